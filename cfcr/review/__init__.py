"""Review tools over offline renders: what a change does (``cfcr diff``), what a stack costs
(``cfcr cost``), and the architecture picture ``cfcr render`` draws."""
