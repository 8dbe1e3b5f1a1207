/*
 * intercept.h: the stable C ABI of intercept.
 *
 * 1. Native apps. A shared library named by a route `dylib:PATH[#SYMBOL]`
 *    exports an intercept_app_create_fn (default symbol
 *    `intercept_app_create`). It is loaded the first time the route is used,
 *    the create function is called once, and the app's handler is then
 *    called for every request, from any dispatcher thread at once, so it
 *    must be thread-safe. The library is never unloaded while a request is
 *    running.
 *
 * 2. The runtime API, exported by libintercept.so (the process must run
 *    with it preloaded: `intercept run -- PROGRAM`): add and remove routes
 *    from inside the program, the way wsgi_intercept's
 *    add_wsgi_intercept / remove_wsgi_intercept do.
 */
#ifndef INTERCEPT_H
#define INTERCEPT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define INTERCEPT_ABI_VERSION 1

typedef struct intercept_header {
    const char *name;
    const char *value;
} intercept_header;

/* One request. Every string is NUL-terminated and valid during the call. */
typedef struct intercept_request {
    const char *method;      /* "GET" */
    const char *scheme;      /* "http" or "https" */
    const char *host;        /* the name the client connected to */
    uint16_t port;
    const char *target;      /* the request target as received, "/api/x?y=1" */
    const char *script_name; /* the route's mount point, "" for the root */
    const char *path_info;   /* the rest of the path, percent-decoded */
    const char *query;       /* the raw query string, without '?' */
    const intercept_header *headers; /* in the order received */
    size_t header_count;
    /* Reads up to len body bytes: returns the count, 0 at the end of the
     * body, -1 on error (the client went away, or sent a malformed body). */
    intptr_t (*read_body)(void *body, uint8_t *buf, size_t len);
    void *body;
} intercept_request;

/* The response being built. Status (default 200) and headers must be set
 * before the first write; Content-Length and framing are the dispatcher's. */
typedef struct intercept_response {
    void *ctx;
    int (*set_status)(void *ctx, uint16_t status);                      /* 0 or -1 */
    int (*add_header)(void *ctx, const char *name, const char *value);  /* 0 or -1 */
    int (*write)(void *ctx, const uint8_t *buf, size_t len);            /* 0 or -1 */
} intercept_response;

typedef struct intercept_app {
    uint32_t abi_version; /* set to INTERCEPT_ABI_VERSION */
    void *state;          /* passed back to handle and destroy */
    /* Answers one request: 0, or nonzero for a 500 (when nothing was
     * written yet; otherwise the connection is cut). */
    int (*handle)(void *state, const intercept_request *req, const intercept_response *resp);
    /* Called when the route is removed and no request is running; may be NULL. */
    void (*destroy)(void *state);
} intercept_app;

/* Fills *app; returns 0, or nonzero if the app cannot start (every request
 * to the route then gets 500). Called once, on the route's first request. */
typedef int (*intercept_app_create_fn)(intercept_app *app);

/* ---- runtime API (libintercept.so) ---- */

/* Adds a route, as an env file line would: url "http://api.test/v1",
 * app "echo", "static:200 hi", "files:DIR", "dylib:PATH", ... Returns 0, or
 * -1 with the reason in intercept_last_error(). */
int intercept_add_route(const char *url, const char *app);

/* Adds a route served by `create`'s app (called once, on first use). */
int intercept_add_app(const char *url, intercept_app_create_fn create);

/* Removes every route on host:port; returns how many went. The name stops
 * resolving once no route uses it; a kept-alive connection is closed at
 * its next request (over HTTP/2 the stream is refused). */
int intercept_remove_routes(const char *host, uint16_t port);

/* Inside an app's handle(): the pthread_t of the thread of this process
 * that opened the connection being answered (as a number), and the
 * client's fd in *fd (when fd is not NULL); 0 and -1 when the client is
 * another process or nothing is being answered on this thread. An app
 * running in the client's own runtime can raise its errors there. */
uint64_t intercept_request_opener(int *fd);

/* The reason the last call on this thread failed, or "". */
const char *intercept_last_error(void);

/* 1 when libintercept.so is preloaded (its hooks are live), else 0. */
int intercept_is_preloaded(void);

#ifdef __cplusplus
}
#endif
#endif
