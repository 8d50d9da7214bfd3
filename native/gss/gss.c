/*
 * GSS-TSIG's few GSS-API calls (RFC 3645) over the system's MIT libgssapi_krb5.
 *
 * acquireCredentials and initSecContext may talk to the KDC, so they run on
 * libuv's thread pool and return Promises; getMic / verifyMic are local and
 * synchronous. Every failure is an Error with code 'GSS_ERROR' whose message
 * holds the major AND the mechanism's minor status in words (through SPNEGO
 * the major alone reads "Unspecified GSS failure").
 *
 * Handles are JS objects wrapping a C struct; a context being negotiated on a
 * worker thread is marked busy so the main thread never uses it meanwhile.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5/krb5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static gss_OID_desc spnego_oid = {6, (void *)"\x2b\x06\x01\x05\x05\x02"}; /* 1.3.6.1.5.5.2 */

typedef struct {
  gss_cred_id_t cred;
  int users; /* negotiations running with it on worker threads */
  char ccache[64]; /* the private MEMORY: cache, destroyed on release */
} cred_t;

typedef struct {
  gss_ctx_id_t ctx;
  gss_OID mech; /* the mechanism asked for (static OIDs) */
  int busy;     /* a negotiation step is running on a worker thread */
  int complete;
} ctx_t;

#define CHECK(call)                                                      \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      napi_throw_error(env, "GSS_ADDON", "N-API call failed: " #call); \
      return NULL;                                                       \
    }                                                                    \
  } while (0)

/* ------------------------------------------------------------ errors */

/* Appends every message gss_display_status has for `code` to out. */
static void append_status(char *out, size_t size, OM_uint32 code, int type, gss_OID mech) {
  OM_uint32 more = 0, minor;
  do {
    gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
    if (GSS_ERROR(gss_display_status(&minor, code, type, mech, &more, &b))) break;
    size_t used = strlen(out);
    if (b.length > 0 && used + 3 < size)
      snprintf(out + used, size - used, "%s%.*s", used ? "; " : "", (int)b.length, (const char *)b.value);
    gss_release_buffer(&minor, &b);
  } while (more != 0);
}

static napi_value gss_error(napi_env env, const char *what, OM_uint32 major, OM_uint32 minor, gss_OID mech) {
  char maj[512] = "", min[512] = "", msg[1200];
  append_status(maj, sizeof maj, major, GSS_C_GSS_CODE, GSS_C_NO_OID);
  if (minor != 0) {
    append_status(min, sizeof min, minor, GSS_C_MECH_CODE, mech);
    /* SPNEGO passes the krb5 mechanism's minor status up: read it as krb5's. */
    if ((min[0] == '\0' || strncmp(min, "Unknown", 7) == 0) && mech != gss_mech_krb5) {
      min[0] = '\0';
      append_status(min, sizeof min, minor, GSS_C_MECH_CODE, gss_mech_krb5);
    }
  }
  snprintf(msg, sizeof msg, "%s: %s (major 0x%x): %s (minor %u)", what, maj[0] ? maj : "no major text", major,
           min[0] ? min : "no minor text", minor);
  napi_value code, text, err, num;
  napi_create_string_utf8(env, "GSS_ERROR", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &err);
  napi_create_uint32(env, major, &num);
  napi_set_named_property(env, err, "major", num);
  napi_create_uint32(env, minor, &num);
  napi_set_named_property(env, err, "minor", num);
  return err;
}

static napi_value throw_gss(napi_env env, const char *what, OM_uint32 major, OM_uint32 minor, gss_OID mech) {
  napi_throw(env, gss_error(env, what, major, minor, mech));
  return NULL;
}

/* ------------------------------------------------------------ argument helpers */

static char *get_string(napi_env env, napi_value v, const char *what) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", what);
    return NULL;
  }
  char *s = malloc(len + 1);
  if (s == NULL || napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok || strlen(s) != len) {
    free(s);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", what); /* also refuses embedded NULs */
    return NULL;
  }
  return s;
}

static int get_buffer(napi_env env, napi_value v, gss_buffer_desc *out, const char *what) {
  bool is;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is ||
      napi_get_buffer_info(env, v, &out->value, &out->length) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", what);
    return 0;
  }
  return 1;
}

static void *unwrap(napi_env env, napi_value v, napi_type_tag *tag, const char *what) {
  bool ok = false;
  void *p = NULL;
  if (napi_check_object_type_tag(env, v, tag, &ok) != napi_ok || !ok || napi_unwrap(env, v, &p) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", what);
    return NULL;
  }
  return p;
}

static napi_type_tag cred_tag = {0x6a1f3c2e9b7d4e01ULL, 0x8c5a2f7e1d3b9a02ULL};
static napi_type_tag ctx_tag = {0x6a1f3c2e9b7d4e01ULL, 0x8c5a2f7e1d3b9a03ULL};

static napi_value to_buffer(napi_env env, gss_buffer_desc *b) {
  napi_value out;
  void *unused;
  if (napi_create_buffer_copy(env, b->length, b->value ? b->value : "", &unused, &out) != napi_ok) return NULL;
  return out;
}

/* ------------------------------------------------------------ credentials */

static void release_cred(cred_t *c) {
  OM_uint32 minor;
  if (c->cred != GSS_C_NO_CREDENTIAL) gss_release_cred(&minor, &c->cred);
  if (c->ccache[0] != '\0') {
    /* A MEMORY: cache outlives the credential handle: destroy its tickets. */
    krb5_context k;
    krb5_ccache cc;
    if (krb5_init_context(&k) == 0) {
      if (krb5_cc_resolve(k, c->ccache, &cc) == 0) krb5_cc_destroy(k, cc);
      krb5_free_context(k);
    }
    c->ccache[0] = '\0';
  }
}

static void finalize_cred(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  release_cred(data);
  free(data);
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *principal, *keytab;
  cred_t *cred;
  OM_uint32 major, minor;
  const char *what;
} acquire_t;

static void acquire_execute(napi_env env, void *data) {
  (void)env;
  acquire_t *a = data;
  static unsigned counter;
  gss_name_t name = GSS_C_NO_NAME;
  gss_buffer_desc nb = {strlen(a->principal), a->principal};
  OM_uint32 minor;
  snprintf(a->cred->ccache, sizeof a->cred->ccache, "MEMORY:failover-agent-gss-%ld-%u", (long)getpid(),
           __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
  a->what = "gss_import_name (principal)";
  a->major = gss_import_name(&a->minor, &nb, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
  if (GSS_ERROR(a->major)) return;
  gss_key_value_element_desc el[2] = {{"client_keytab", a->keytab}, {"ccache", a->cred->ccache}};
  gss_key_value_set_desc store = {2, el};
  a->what = "gss_acquire_cred_from";
  /* No mechanism set: the credential then serves both krb5 and SPNEGO. */
  a->major = gss_acquire_cred_from(&a->minor, name, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_INITIATE, &store,
                                   &a->cred->cred, NULL, NULL);
  gss_release_name(&minor, &name);
}

static void acquire_complete(napi_env env, napi_status status, void *data) {
  acquire_t *a = data;
  napi_value result = NULL;
  if (status == napi_ok && !GSS_ERROR(a->major)) {
    if (napi_create_object(env, &result) == napi_ok && napi_type_tag_object(env, result, &cred_tag) == napi_ok &&
        napi_wrap(env, result, a->cred, finalize_cred, NULL, NULL) == napi_ok) {
      a->cred = NULL;
    } else {
      result = NULL;
    }
  }
  if (result != NULL) {
    napi_resolve_deferred(env, a->deferred, result);
  } else {
    napi_value err = gss_error(env, a->what, a->major, a->minor, gss_mech_krb5);
    napi_reject_deferred(env, a->deferred, err);
  }
  if (a->cred) {
    release_cred(a->cred);
    free(a->cred);
  }
  napi_delete_async_work(env, a->work);
  free(a->principal);
  free(a->keytab);
  free(a);
}

/* acquireCredentials(principal, keytab): Promise<Credentials> */
static napi_value acquire_credentials(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], promise, name;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  acquire_t *a = calloc(1, sizeof *a);
  if (a == NULL) return NULL;
  a->principal = get_string(env, argv[0], "principal must be a string");
  a->keytab = a->principal ? get_string(env, argv[1], "keytab must be a string") : NULL;
  a->cred = calloc(1, sizeof *a->cred);
  if (a->principal == NULL || a->keytab == NULL || a->cred == NULL) {
    free(a->principal), free(a->keytab), free(a->cred), free(a);
    return NULL;
  }
  a->cred->cred = GSS_C_NO_CREDENTIAL;
  CHECK(napi_create_promise(env, &a->deferred, &promise));
  CHECK(napi_create_string_utf8(env, "gss.acquireCredentials", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, acquire_execute, acquire_complete, a, &a->work));
  CHECK(napi_queue_async_work(env, a->work));
  return promise;
}

/* releaseCredentials(cred): frees it now (the GC would later). */
static napi_value release_credentials(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  cred_t *c = unwrap(env, argv[0], &cred_tag, "not a credential handle");
  if (c != NULL && c->users > 0) {
    napi_throw_error(env, "GSS_ADDON", "credentials are in use by a negotiation");
    return NULL;
  }
  if (c != NULL) release_cred(c);
  return NULL;
}

/* ------------------------------------------------------------ contexts */

static void delete_ctx(ctx_t *c) {
  OM_uint32 minor;
  if (c->ctx != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &c->ctx, GSS_C_NO_BUFFER);
  c->complete = 0;
}

static void finalize_ctx(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  delete_ctx(data);
  free(data);
}

/* createContext(mech: 'krb5' | 'spnego'): an empty context handle. */
static napi_value create_context(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], obj;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *mech = get_string(env, argv[0], "mech must be a string");
  if (mech == NULL) return NULL;
  gss_OID oid = strcmp(mech, "krb5") == 0 ? gss_mech_krb5 : strcmp(mech, "spnego") == 0 ? &spnego_oid : NULL;
  free(mech);
  if (oid == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "mech must be 'krb5' or 'spnego'");
    return NULL;
  }
  ctx_t *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->ctx = GSS_C_NO_CONTEXT;
  c->mech = oid;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_type_tag_object(env, obj, &ctx_tag));
  if (napi_wrap(env, obj, c, finalize_ctx, NULL, NULL) != napi_ok) {
    free(c);
    napi_throw_error(env, "GSS_ADDON", "napi_wrap failed");
    return NULL;
  }
  return obj;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref ctx_ref, cred_ref; /* keep both handles alive while the worker uses them */
  ctx_t *ctx;
  cred_t *cred;
  char *target;
  void *input;
  size_t input_len;
  gss_buffer_desc output;
  OM_uint32 major, minor, ret_flags, time_rec;
  const char *what;
} init_t;

static void init_execute(napi_env env, void *data) {
  (void)env;
  init_t *w = data;
  gss_name_t target = GSS_C_NO_NAME;
  gss_buffer_desc tb = {strlen(w->target), w->target}, in = {w->input_len, w->input};
  OM_uint32 minor;
  w->what = "gss_import_name (target)";
  w->major = gss_import_name(&w->minor, &tb, GSS_KRB5_NT_PRINCIPAL_NAME, &target);
  if (GSS_ERROR(w->major)) return;
  w->what = "gss_init_sec_context";
  /* No SEQUENCE: it would reject a late answer to an earlier attempt as out of order. */
  w->major = gss_init_sec_context(&w->minor, w->cred->cred, &w->ctx->ctx, target, w->ctx->mech,
                                  GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG | GSS_C_INTEG_FLAG, GSS_C_INDEFINITE,
                                  GSS_C_NO_CHANNEL_BINDINGS, w->input ? &in : GSS_C_NO_BUFFER, NULL, &w->output,
                                  &w->ret_flags, &w->time_rec);
  gss_release_name(&minor, &target);
}

static void init_complete(napi_env env, napi_status status, void *data) {
  init_t *w = data;
  napi_value result = NULL, v, ctx_obj;
  OM_uint32 minor;
  w->ctx->busy = 0;
  w->cred->users--;
  int complete = w->major == GSS_S_COMPLETE;
  if (complete && (w->ret_flags & (GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG)) != (GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG)) {
    /* A context without integrity cannot sign: refuse it rather than fail later. */
    w->what = "gss_init_sec_context (the context lacks mutual authentication or integrity)";
    w->major = GSS_S_FAILURE;
    w->minor = 0;
  }
  if (status == napi_ok && !GSS_ERROR(w->major) && napi_create_object(env, &result) == napi_ok) {
    w->ctx->complete = complete;
    napi_get_reference_value(env, w->ctx_ref, &ctx_obj);
    napi_set_named_property(env, result, "context", ctx_obj);
    v = to_buffer(env, &w->output);
    napi_set_named_property(env, result, "outputToken", v);
    napi_get_boolean(env, complete, &v);
    napi_set_named_property(env, result, "complete", v);
    /* GSS_C_INDEFINITE (all ones) reads as 4294967295 s; the wrapper maps it. */
    napi_create_uint32(env, w->time_rec, &v);
    napi_set_named_property(env, result, "contextExpiresSeconds", v);
    napi_resolve_deferred(env, w->deferred, result);
  } else {
    napi_value err = gss_error(env, w->what, w->major, w->minor, w->ctx->mech);
    delete_ctx(w->ctx); /* a failed negotiation leaves nothing usable */
    napi_reject_deferred(env, w->deferred, err);
  }
  gss_release_buffer(&minor, &w->output);
  napi_delete_reference(env, w->ctx_ref);
  napi_delete_reference(env, w->cred_ref);
  napi_delete_async_work(env, w->work);
  free(w->target);
  free(w->input);
  free(w);
}

/* initSecContext(cred, ctx, target, inputToken | null): Promise<{context, outputToken, complete, contextExpiresSeconds}> */
static napi_value init_sec_context(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], promise, name;
  napi_valuetype t;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  cred_t *cred = unwrap(env, argv[0], &cred_tag, "not a credential handle");
  if (cred == NULL) return NULL;
  ctx_t *ctx = unwrap(env, argv[1], &ctx_tag, "not a context handle");
  if (ctx == NULL) return NULL;
  if (cred->cred == GSS_C_NO_CREDENTIAL) return throw_gss(env, "credentials already released", GSS_S_NO_CRED, 0, GSS_C_NO_OID);
  if (ctx->busy || ctx->complete) {
    napi_throw_error(env, "GSS_ADDON", ctx->busy ? "context is being negotiated" : "context is already established");
    return NULL;
  }
  gss_buffer_desc in = GSS_C_EMPTY_BUFFER;
  CHECK(napi_typeof(env, argv[3], &t));
  if (t != napi_null && t != napi_undefined && !get_buffer(env, argv[3], &in, "inputToken must be a Buffer or null"))
    return NULL;
  init_t *w = calloc(1, sizeof *w);
  if (w == NULL) return NULL;
  w->target = get_string(env, argv[2], "target must be a string");
  if (w->target == NULL) {
    free(w);
    return NULL;
  }
  if (t != napi_null && t != napi_undefined) {
    /* Copied: the worker must not read a Buffer the GC may move or free. */
    w->input = malloc(in.length ? in.length : 1);
    if (w->input == NULL) {
      free(w->target), free(w);
      return NULL;
    }
    memcpy(w->input, in.value, in.length);
    w->input_len = in.length;
  }
  w->ctx = ctx;
  w->cred = cred;
  CHECK(napi_create_reference(env, argv[1], 1, &w->ctx_ref));
  CHECK(napi_create_reference(env, argv[0], 1, &w->cred_ref));
  CHECK(napi_create_promise(env, &w->deferred, &promise));
  CHECK(napi_create_string_utf8(env, "gss.initSecContext", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, init_execute, init_complete, w, &w->work));
  ctx->busy = 1;
  cred->users++;
  CHECK(napi_queue_async_work(env, w->work));
  return promise;
}

static ctx_t *established(napi_env env, napi_value v) {
  ctx_t *c = unwrap(env, v, &ctx_tag, "not a context handle");
  if (c != NULL && (c->busy || !c->complete || c->ctx == GSS_C_NO_CONTEXT)) {
    throw_gss(env, "context is not established", GSS_S_NO_CONTEXT, 0, GSS_C_NO_OID);
    return NULL;
  }
  return c;
}

/* getMic(ctx, message): Buffer */
static napi_value get_mic(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  gss_buffer_desc msg, tok = GSS_C_EMPTY_BUFFER;
  OM_uint32 major, minor;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  ctx_t *c = established(env, argv[0]);
  if (c == NULL || !get_buffer(env, argv[1], &msg, "message must be a Buffer")) return NULL;
  major = gss_get_mic(&minor, c->ctx, GSS_C_QOP_DEFAULT, &msg, &tok);
  if (major != GSS_S_COMPLETE) return throw_gss(env, "gss_get_mic", major, minor, c->mech);
  out = to_buffer(env, &tok);
  gss_release_buffer(&minor, &tok);
  return out;
}

/* verifyMic(ctx, message, mic): undefined, or throws. Any status but COMPLETE
 * fails, the supplementary ones too (DUPLICATE_TOKEN is a replayed answer). */
static napi_value verify_mic(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  gss_buffer_desc msg, mic;
  OM_uint32 major, minor;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  ctx_t *c = established(env, argv[0]);
  if (c == NULL || !get_buffer(env, argv[1], &msg, "message must be a Buffer") ||
      !get_buffer(env, argv[2], &mic, "mic must be a Buffer"))
    return NULL;
  major = gss_verify_mic(&minor, c->ctx, &msg, &mic, NULL);
  if (major != GSS_S_COMPLETE) return throw_gss(env, "gss_verify_mic", major, minor, c->mech);
  return NULL;
}

/* deleteContext(ctx): frees it now; the handle can be negotiated again. */
static napi_value delete_context(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  ctx_t *c = unwrap(env, argv[0], &ctx_tag, "not a context handle");
  if (c == NULL) return NULL;
  if (c->busy) {
    napi_throw_error(env, "GSS_ADDON", "context is being negotiated");
    return NULL;
  }
  delete_ctx(c);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"acquireCredentials", NULL, acquire_credentials, NULL, NULL, NULL, napi_enumerable, NULL},
      {"releaseCredentials", NULL, release_credentials, NULL, NULL, NULL, napi_enumerable, NULL},
      {"createContext", NULL, create_context, NULL, NULL, NULL, napi_enumerable, NULL},
      {"initSecContext", NULL, init_sec_context, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getMic", NULL, get_mic, NULL, NULL, NULL, napi_enumerable, NULL},
      {"verifyMic", NULL, verify_mic, NULL, NULL, NULL, napi_enumerable, NULL},
      {"deleteContext", NULL, delete_context, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
