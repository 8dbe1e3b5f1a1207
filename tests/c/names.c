/* Resolves a name with every legacy resolver call the shim answers and
 * prints what each returned, then the reverse lookup of the first address. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

static void show(const char *call, struct hostent *h) {
    char text[INET6_ADDRSTRLEN];
    if (!h) {
        printf("%s: none (h_errno %d)\n", call, h_errno);
        return;
    }
    inet_ntop(h->h_addrtype, h->h_addr_list[0], text, sizeof text);
    printf("%s: %s %s %s len=%d more=%d\n", call, h->h_name, h->h_addrtype == AF_INET ? "AF_INET" : "AF_INET6", text,
           h->h_length, h->h_addr_list[1] != NULL);
}

int main(int argc, char **argv) {
    const char *name = argv[1];
    show("gethostbyname", gethostbyname(name));
    show("gethostbyname2", gethostbyname2(name, AF_INET6));

    struct hostent ret, *result = NULL;
    char buf[1024];
    int err = 0;
    int rc = gethostbyname_r(name, &ret, buf, sizeof buf, &result, &err);
    printf("gethostbyname_r rc=%d\n", rc);
    show("gethostbyname_r", result);
    rc = gethostbyname2_r(name, AF_INET6, &ret, buf, sizeof buf, &result, &err);
    printf("gethostbyname2_r rc=%d\n", rc);
    show("gethostbyname2_r", result);
    char tiny[8];
    rc = gethostbyname_r(name, &ret, tiny, sizeof tiny, &result, &err);
    printf("gethostbyname_r small buffer: %s\n", rc == ERANGE ? "ERANGE" : "other");

    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(80)};
    struct hostent *h = gethostbyname(name);
    if (h) {
        memcpy(&sin.sin_addr, h->h_addr_list[0], 4);
        char host[256], serv[32];
        rc = getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, serv, sizeof serv, NI_NUMERICSERV);
        printf("getnameinfo rc=%d %s %s\n", rc, host, serv);
        rc = getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
        printf("getnameinfo numeric rc=%d %s\n", rc, host);
    }
    return 0;
}
