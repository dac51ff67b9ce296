# The data team's metric SQL, published the way `tally sql deploy` publishes it: one immutable
# object holding every file of sql/, named by a hash of its content, then the pointer the rollup
# and the api read (docs/metrics.md). `terraform apply` after editing sql/ deploys the change with
# no Rust build; the rollup rebuilds each changed metric beside its old numbers. Terraform cannot
# run the checks `tally sql deploy` runs: run `tally sql check` and `tally sql test` first (CI).
locals {
  sql_dir         = "${path.module}/../sql"
  catalog_content = jsonencode({ files = { for f in sort(tolist(fileset(local.sql_dir, "*.sql"))) : f => file("${local.sql_dir}/${f}") } })
  catalog_id      = substr(sha256(local.catalog_content), 0, 32)
}

resource "aws_s3_object" "catalog_version" {
  bucket       = aws_s3_bucket.events.id
  key          = "_catalog/versions/${local.catalog_id}.json"
  content      = local.catalog_content
  content_type = "application/json"
  kms_key_id   = aws_kms_key.tally.arn
}

resource "aws_s3_object" "catalog_current" {
  bucket       = aws_s3_bucket.events.id
  key          = "_catalog/current.json"
  content      = jsonencode({ version = local.catalog_id })
  content_type = "application/json"
  kms_key_id   = aws_kms_key.tally.arn
  # The pointer only ever names a version that is already there.
  depends_on = [aws_s3_object.catalog_version]
}
