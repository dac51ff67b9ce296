# One customer-managed key encrypts the bucket, queues, table and log groups.
resource "aws_kms_key" "tally" {
  description             = "${var.name}: events, queues, period table and logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "tally" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.tally.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:a key policy's resource "*" means this key; writes are limited to the account and named services
  #checkov:skip=CKV_AWS_356:a key policy's resource "*" means this key itself
  #checkov:skip=CKV_AWS_109:the account root administers its own key, the documented default key policy
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "ServicesUseTheKey"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type = "Service"
      identifiers = [
        "logs.${var.region}.amazonaws.com",
        "sqs.amazonaws.com",
        "sns.amazonaws.com",
        "events.amazonaws.com",
        "scheduler.amazonaws.com",
        "cloudwatch.amazonaws.com",
      ]
    }
  }
}
