/* A native intercept app in C: answers "hello from C" with the request's
 * path, echoing the request body back. Build:
 *   cc -shared -fPIC -I include -o libhello.so examples/apps/hello.c
 * Route:
 *   INTERCEPT_ROUTE_HELLO=http://hello.example.test -> dylib:./libhello.so */
#include <stdio.h>
#include <string.h>

#include "intercept.h"

static int handle(void *state, const intercept_request *req, const intercept_response *resp) {
    (void)state;
    char line[512];
    int n = snprintf(line, sizeof line, "hello from C: %s %s (mounted at \"%s\", path_info \"%s\", query \"%s\")\n",
                     req->method, req->target, req->script_name, req->path_info, req->query);
    resp->set_status(resp->ctx, 200);
    resp->add_header(resp->ctx, "Content-Type", "text/plain");
    resp->add_header(resp->ctx, "X-App", "hello.c");
    if (resp->write(resp->ctx, (const uint8_t *)line, (size_t)n) != 0) return 1;
    for (size_t i = 0; i < req->header_count; i++) {
        if (strcmp(req->headers[i].name, "X-Greeting") == 0) {
            resp->write(resp->ctx, (const uint8_t *)req->headers[i].value, strlen(req->headers[i].value));
            resp->write(resp->ctx, (const uint8_t *)"\n", 1);
        }
    }
    uint8_t buf[4096];
    intptr_t got;
    while ((got = req->read_body(req->body, buf, sizeof buf)) > 0) {
        if (resp->write(resp->ctx, buf, (size_t)got) != 0) return 1;
    }
    return got < 0 ? 1 : 0;
}

int intercept_app_create(intercept_app *app) {
    app->abi_version = INTERCEPT_ABI_VERSION;
    app->state = NULL;
    app->handle = handle;
    app->destroy = NULL;
    return 0;
}

/* A second entry point, for routes that name it: dylib:./libhello.so#teapot */
static int teapot(void *state, const intercept_request *req, const intercept_response *resp) {
    (void)state;
    (void)req;
    resp->set_status(resp->ctx, 418);
    return resp->write(resp->ctx, (const uint8_t *)"short and stout\n", 16);
}

int teapot_create(intercept_app *app) {
    app->abi_version = INTERCEPT_ABI_VERSION;
    app->state = NULL;
    app->handle = teapot;
    app->destroy = NULL;
    return 0;
}
