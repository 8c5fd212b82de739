/*
 * TLS for the TCP listener, over the libuv stream: OpenSSL works on two
 * memory BIOs, one fed with the bytes the socket gave (ciphertext in), one
 * drained into the socket (ciphertext out, handshake records included), so
 * the event loop never blocks in OpenSSL. The AgentHello token is still
 * required after the handshake; with tls_client_ca the gateway must also
 * present a certificate that CA signed (mutual TLS).
 */
#include "agent.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>

struct faas_tls_conn_s {
    SSL *ssl;
    BIO *in;  /* socket -> OpenSSL */
    BIO *out; /* OpenSSL -> socket */
};

static int
tls_error(faas_error_t *err, const char *what, const char *path)
{
    char reason[256];

    ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
    ERR_clear_error();
    return faas_error_set(err, 0, "%s %s: %s", what, path, reason);
}

SSL_CTX *
faas_tls_server_new(const char *cert, const char *key, const char *client_ca,
                    faas_error_t *err)
{
    SSL_CTX *ctx;

    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tls_error(err, "tls:", "context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* no resumption: gateways keep their connections; and no ticket
     * records arriving after the handshake on an idle connection */
    SSL_CTX_set_num_tickets(ctx, 0);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        tls_error(err, "tls_cert", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        tls_error(err, "tls_key", key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_error(err, "tls_key", key);
        goto fail;
    }
    if (client_ca != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1) {
            tls_error(err, "tls_client_ca", client_ca);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(client_ca));
        SSL_CTX_set_verify(ctx,
                           SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                           NULL);
    }
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}

faas_tls_conn_t *
faas_tls_conn_new(SSL_CTX *ctx)
{
    faas_tls_conn_t *t;

    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    t->ssl = SSL_new(ctx);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->in == NULL || t->out == NULL) {
        SSL_free(t->ssl);
        BIO_free(t->in);
        BIO_free(t->out);
        free(t);
        return NULL;
    }
    /* the SSL owns both BIOs from here on */
    SSL_set_bio(t->ssl, t->in, t->out);
    SSL_set_accept_state(t->ssl);
    return t;
}

void
faas_tls_conn_free(faas_tls_conn_t *t)
{
    if (t != NULL) {
        SSL_free(t->ssl);
        free(t);
    }
}

int
faas_tls_conn_feed(faas_tls_conn_t *t, const void *data, size_t n)
{
    return BIO_write(t->in, data, (int) n) == (int) n ? 0 : -1;
}

ssize_t
faas_tls_conn_read(faas_tls_conn_t *t, void *buf, size_t n, faas_error_t *err)
{
    int ret;

    ret = SSL_read(t->ssl, buf, (int) n);
    if (ret > 0) {
        return ret;
    }
    switch (SSL_get_error(t->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return faas_error_set(err, 0, "tls: closed by the peer");
    default:
        return tls_error(err, "tls:", "handshake or record");
    }
}

int
faas_tls_conn_write(faas_tls_conn_t *t, const void *buf, size_t n)
{
    return SSL_write(t->ssl, buf, (int) n) == (int) n ? 0 : -1;
}

uint8_t *
faas_tls_conn_take_output(faas_tls_conn_t *t, size_t *len)
{
    size_t   n = BIO_ctrl_pending(t->out);
    uint8_t *buf;

    if (n == 0 || (buf = malloc(n)) == NULL) {
        return NULL;
    }
    *len = (size_t) BIO_read(t->out, buf, (int) n);
    return buf;
}
