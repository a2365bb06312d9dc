"""The bash retry loop the cloud hooks' API calls share (AWS, GCP, Azure).

Each hook's call function reads its credentials from standard input and BODY (if any) through
file descriptor 3, so neither ever appears on a command line, then runs :func:`retry_loop` around
its own curl command: a 2xx answer is printed and the function returns 0; throttling (429),
server errors (5xx) and lost connections are tried three times; any other status ends the loop
at once. What follows the loop is the cloud's own: it reads ``$code`` (``000`` when no answer
came) and ``$out`` (the last answer's body) to report the error in its API's words.
"""

from __future__ import annotations

from collections.abc import Sequence


def retry_loop(command: Sequence[str]) -> list[str]:
    """The loop's lines around ``command``: the lines of a pipeline ending in curl's arguments
    (curl must add ``-w '\\n%{http_code}'``: the status on a last line), without the body's
    redirection, which the loop adds."""
    first, *rest = command
    lines = [f"    if out=$({first}", *[f"      {line}" for line in rest]]
    lines[-1] += " \\"
    return [
        "  for n in 1 2 3; do",
        "    code=000",
        *lines,
        "      3< <(printf '%s' \"$body\")); then",
        "      code=${out##*$'\\n'}",
        "      out=${out%$'\\n'*}",
        "      case $code in",
        "        2??) printf '%s\\n' \"$out\"; return 0 ;;",
        "        429 | 5??) ;;",
        "        *) break ;;",
        "      esac",
        "    fi",
        "    [ \"$n\" = 3 ] || sleep \"$n\"",
        "  done",
    ]


def bearer_call(name: str) -> list[str]:
    """The opening lines of bash function ``name URL BODY [CURL ARGS...]``, an API call with the
    OAuth bearer token on standard input (GCP, Azure), through its retry loop; the caller adds
    its error handling and the closing ``}``."""
    return [
        f"{name}() {{",
        "  local url=$1 body=$2 token out code n",
        "  shift 2",
        "  token=$(cat)",
        "  [ -z \"$body\" ] || set -- \"$@\" --data-binary @/dev/fd/3",
        *retry_loop(["printf 'Authorization: Bearer %s\\n' \"$token\" |",
                     "curl -sS --connect-timeout 10 --max-time 120 -H @- -w '\\n%{http_code}' \"$@\" \"$url\""]),
    ]
