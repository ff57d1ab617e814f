/* A tiny HTTP server for checking real nodes: every request gets "hello from <hostname>"
 * (the Pod's name). Listens on the port in $PORT (default 8080). Built static into an
 * image with nothing else in it. */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_stop(int sig) {
    (void)sig;
    _exit(0);
}

int main(void) {
    const char *port_text = getenv("PORT");
    int port = port_text ? atoi(port_text) : 8080;
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    signal(SIGPIPE, SIG_IGN);

    int server = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY};
    if (server < 0 || bind(server, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(server, 16) < 0) {
        perror("hello: listen");
        return 1;
    }
    fprintf(stderr, "hello: listening on :%d\n", port);

    char body[320], response[512], request[2048];
    int body_len = snprintf(body, sizeof body, "hello from %s\n", host);
    int len = snprintf(response, sizeof response,
                       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                       "Connection: close\r\n\r\n%s", body_len, body);
    for (;;) {
        int client = accept(server, NULL, NULL);
        if (client < 0) {
            continue;
        }
        /* The request is read (up to the buffer) and ignored: every path gets the same answer. */
        (void)read(client, request, sizeof request);
        (void)write(client, response, len);
        close(client);
    }
}
