# The elastiq worker image: Amazon Linux 2023 (the most recent x86_64 image
# of Amazon's) with the worker, ONNX Runtime, the face models, the demo
# gallery and the elastiq-worker systemd unit installed by provision.sh
# from the bundle folder (go run ./infra/deploy/cmd/bundle). The unit is not
# enabled: a worker's user data (infra/deploy, BakedImage) writes its
# configuration, then starts it. See README.md.
#
# Packer 1.6.6 (Debian's) validates it: scripts/check-ami.sh.

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "AWS region the image is built in (and usable in): the stack's region"
}

variable "instance_type" {
  type        = string
  default     = "t3.small"
  description = "instance type of the build instance"
}

variable "bundle_dir" {
  type        = string
  default     = ".bundle"
  description = "folder of the bundle: worker, models.tar.gz, SHA256SUMS (go run ./infra/deploy/cmd/bundle)"
}

variable "stack" {
  type        = string
  default     = "dev"
  description = "the stack the image is for (tag elastiq:stack)"
}

locals {
  stamp = formatdate("YYYYMMDD-hhmmss", timestamp())
  # What the image holds, by content: the SHA-256 of the bundle's S3 keys,
  # from SHA256SUMS ("<sha256>  <name>" lines).
  sums          = { for line in split("\n", trimspace(file("${var.bundle_dir}/SHA256SUMS"))) : split("  ", line)[1] => split("  ", line)[0] }
  worker_sha256 = local.sums["worker"]
  models_sha256 = local.sums["models.tar.gz"]
}

source "amazon-ebs" "worker" {
  region          = var.region
  instance_type   = var.instance_type
  ssh_username    = "ec2-user"
  ami_name        = "elastiq-worker-${local.stamp}"
  ami_description = "elastiq worker (worker ${substr(local.worker_sha256, 0, 12)}, models ${substr(local.models_sha256, 0, 12)}) on Amazon Linux 2023"

  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-x86_64"
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  # No instance profile: the build instance holds no AWS credentials. (Packer
  # 1.6.6 has no metadata_options to require IMDSv2 here; the launch template
  # of the workers requires it.)

  tags = {
    Name                  = "elastiq-worker-${local.stamp}"
    "elastiq:role"        = "worker-image"
    "elastiq:stack"       = var.stack
    "elastiq:worker"      = local.worker_sha256
    "elastiq:models"      = local.models_sha256
    "elastiq:source-ami"  = "{{ .SourceAMI }}"
    "elastiq:source-name" = "{{ .SourceAMIName }}"
  }
  snapshot_tags = {
    Name           = "elastiq-worker-${local.stamp}"
    "elastiq:role" = "worker-image"
  }
  run_tags = {
    Name           = "elastiq-worker-image-build"
    "elastiq:role" = "worker-image-build"
  }
}

build {
  sources = ["source.amazon-ebs.worker"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/elastiq-bundle"]
  }
  provisioner "file" {
    source      = "${var.bundle_dir}/worker"
    destination = "/tmp/elastiq-bundle/worker"
  }
  provisioner "file" {
    source      = "${var.bundle_dir}/models.tar.gz"
    destination = "/tmp/elastiq-bundle/models.tar.gz"
  }
  provisioner "file" {
    source      = "${var.bundle_dir}/SHA256SUMS"
    destination = "/tmp/elastiq-bundle/SHA256SUMS"
  }
  provisioner "file" {
    source      = "${path.root}/elastiq-worker.service"
    destination = "/tmp/elastiq-bundle/elastiq-worker.service"
  }
  provisioner "shell" {
    script          = "${path.root}/provision.sh"
    execute_command = "chmod +x {{ .Path }}; sudo {{ .Path }} /tmp/elastiq-bundle"
  }
}
