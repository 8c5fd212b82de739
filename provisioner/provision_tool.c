/*
 * faas-provision-tool: small helpers for the provisioner's tests and bench.
 *
 *   faas-provision-tool -c CFG put-code KEY FILE   upload FILE to the store of
 *                                                  CFG (store_url, s3_*)
 *   faas-provision-tool unzip ZIP DIR [MAX_FILE_BYTES]
 *                                     the cache's safe unzip, as nobody
 *
 * Exit 0 on success, 1 with a one-line reason on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob.h"
#include "config.h"
#include "prov.h"


int
main(int argc, char **argv)
{
    faas_error_t       err = { 0 };
    const char        *cfgpath = NULL, *url;
    json_t            *cfg;
    faas_blob_store_t *store;
    int                opt, rc;

    while ((opt = getopt(argc, argv, "+c:")) != -1) {
        if (opt == 'c') {
            cfgpath = optarg;
        } else {
            return 1;
        }
    }
    argc -= optind;
    argv += optind;
    if ((argc == 3 || argc == 4) && strcmp(argv[0], "unzip") == 0) {
        faas_unpriv_t who = { 65534, 65534, 256ULL << 20, 0 };

        if (argc == 4) {
            who.max_fsize = strtoull(argv[3], NULL, 10);
        }
        if (faas_prov_code_unzip(argv[1], argv[2], &who, &err) < 0) {
            fprintf(stderr, "unzip: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    if (argc != 3 || strcmp(argv[0], "put-code") != 0 || cfgpath == NULL) {
        fprintf(stderr, "usage: faas-provision-tool -c CFG put-code KEY FILE\n"
                        "       faas-provision-tool unzip ZIP DIR "
                        "[MAX_FILE_BYTES]\n");
        return 1;
    }
    cfg = faas_config_load(cfgpath, &err);
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    url = faas_config_string(cfg, "store_url", NULL);
    if (url == NULL) {
        fprintf(stderr, "config: store_url is required\n");
        return 1;
    }
    store = faas_blob_open(url, cfg, &err);
    if (store == NULL) {
        fprintf(stderr, "store: %s\n", err.msg);
        return 1;
    }
    rc = faas_blob_put_file(store, argv[1], argv[2], &err);
    if (rc < 0) {
        fprintf(stderr, "put %s: %s\n", argv[1], err.msg);
    }
    faas_blob_close(store);
    json_decref(cfg);
    return rc < 0 ? 1 : 0;
}
