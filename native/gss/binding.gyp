{
  "targets": [
    {
      "target_name": "gss",
      "sources": ["gss.c"],
      "cflags": ["<!@(pkg-config --cflags krb5-gssapi krb5)", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "libraries": ["<!@(pkg-config --libs krb5-gssapi krb5)"],
      "libraries!": ["-lnode"]
    }
  ]
}
