/* The sandbox ("pause") process of Edgeline's local nodes: it holds a Pod's namespaces,
 * reaps the zombies of the Pod's processes (it is PID 1 when the Pod shares its PID
 * namespace) and exits on SIGINT or SIGTERM. Built static (gcc -static) into an image
 * with nothing else in it. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
    (void)sig;
    _exit(0);
}

static void on_child(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        puts("edgeline-pause 1");
        return 0;
    }
    if (getpid() != 1) {
        fputs("pause: warning: not PID 1\n", stderr);
    }
    struct sigaction stop = {.sa_handler = on_stop};
    struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGCHLD, &child, NULL);
    for (;;) {
        pause();
    }
}
