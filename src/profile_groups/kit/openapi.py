DESCRIPTION = """
Profile Groups puts your users' profiles into named, addressable groups.

* **Static groups**: members are added and removed through the API.
* **Dynamic groups**: membership follows a rule tree over profile attributes and activity and is
  kept up to date by the segmentation worker.

Every `/api/v1` call needs `Authorization: Bearer <token>`. Errors always carry `detail` and
`error_code`; validation errors are 400 with `errors[].loc`.
"""
