"""Resource type tokens the policies read, as the engine names them."""

from __future__ import annotations

BOOTSTRAP = "cfcr:bootstrap:ClusterBootstrap"
"""cfcr's cloud-neutral bootstrap component; its inputs summarise the cluster."""

RENDERED_USER_DATA = "cfcr:render:UserData"
"""Not a Pulumi resource: the offline runner presents each role's rendered user-data under this
type (props ``role``, ``userData`` as base64), so the user-data policies see it before any
cloud resource carries it. ``pulumi preview`` never produces it."""

# AWS
AWS_INSTANCE = "aws:ec2/instance:Instance"
AWS_LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
AWS_VOLUME = "aws:ebs/volume:Volume"
AWS_SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
AWS_SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
AWS_SG_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
AWS_ASG = "aws:autoscaling/group:Group"
AWS_LB = "aws:lb/loadBalancer:LoadBalancer"

# GCP
GCP_INSTANCE = "gcp:compute/instance:Instance"
GCP_INSTANCE_TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
GCP_REGION_INSTANCE_TEMPLATE = "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate"
GCP_DISK = "gcp:compute/disk:Disk"
GCP_REGION_DISK = "gcp:compute/regionDisk:RegionDisk"
GCP_FIREWALL = "gcp:compute/firewall:Firewall"
GCP_IGM = "gcp:compute/instanceGroupManager:InstanceGroupManager"
GCP_RIGM = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
GCP_AUTOSCALER = "gcp:compute/autoscaler:Autoscaler"
GCP_REGION_AUTOSCALER = "gcp:compute/regionAutoscaler:RegionAutoscaler"
GCP_SECRET_IAM_MEMBER = "gcp:secretmanager/secretIamMember:SecretIamMember"
GCP_SECRET_IAM_BINDING = "gcp:secretmanager/secretIamBinding:SecretIamBinding"
GCP_SECRET_IAM_POLICY = "gcp:secretmanager/secretIamPolicy:SecretIamPolicy"
GCP_PROJECT_IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"
GCP_PROJECT_IAM_BINDING = "gcp:projects/iAMBinding:IAMBinding"
GCP_PROJECT_IAM_POLICY = "gcp:projects/iAMPolicy:IAMPolicy"

# Azure
AZ_VM = "azure-native:compute:VirtualMachine"
AZ_VMSS = "azure-native:compute:VirtualMachineScaleSet"
AZ_DISK = "azure-native:compute:Disk"
AZ_NSG = "azure-native:network:NetworkSecurityGroup"
AZ_SECURITY_RULE = "azure-native:network:SecurityRule"
AZ_AUTOSCALE = ("azure-native:insights:AutoscaleSetting", "azure-native:monitor:AutoscaleSetting")
AZ_NIC = "azure-native:network:NetworkInterface"
AZ_LOAD_BALANCER = "azure-native:network:LoadBalancer"
AZ_KEY_VAULT = "azure-native:keyvault:Vault"
AZ_ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
AZ_ROLE_DEFINITION = "azure-native:authorization:RoleDefinition"
AZ_STORAGE_ACCOUNT = "azure-native:storage:StorageAccount"
AZ_BLOB_CONTAINER = "azure-native:storage:BlobContainer"
AZ_CLUSTER = "cfcr:azure:Cluster"
"""cfcr's Azure cluster component; its inputs carry ``apiPublic`` (cfcr:networking.apiPublic)."""

# pulumi-tls
TLS_PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
TLS_SELF_SIGNED = "tls:index/selfSignedCert:SelfSignedCert"
TLS_LOCALLY_SIGNED = "tls:index/locallySignedCert:LocallySignedCert"

FIREWALLS = (AWS_SECURITY_GROUP, AWS_SG_RULE, AWS_SG_INGRESS_RULE, GCP_FIREWALL, AZ_NSG, AZ_SECURITY_RULE)
MACHINES = (AWS_INSTANCE, AWS_LAUNCH_TEMPLATE, GCP_INSTANCE, GCP_INSTANCE_TEMPLATE, GCP_REGION_INSTANCE_TEMPLATE,
            AZ_VM, AZ_VMSS)
