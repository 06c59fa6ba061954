/* A registry-free test workload for the real node (test_realnode.py), built static.
 *   echo serve PORT   greet on TCP PORT, echo datagrams on UDP PORT, log to stdout
 *   echo selfcheck    print uid, capabilities, seccomp, no_new_privs and whether / is writable */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void down(int signo) { (void)signo; _exit(0); }

static int bound(int type, int port) {
  int fd = socket(AF_INET, type, 0), one = 1;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); exit(1); }
  return fd;
}

static int serve(int port) {
  int tcp = bound(SOCK_STREAM, port), udp = bound(SOCK_DGRAM, port);
  if (listen(tcp, 16) < 0) { perror("listen"); return 1; }
  printf("echo: listening on tcp and udp port %d\n", port);
  fflush(stdout);
  struct pollfd fds[2] = {{.fd = tcp, .events = POLLIN}, {.fd = udp, .events = POLLIN}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) continue;
    if (fds[0].revents & POLLIN) {
      int c = accept(tcp, NULL, NULL);
      if (c >= 0) { write(c, "sprechzimmer-echo tcp\n", 22); close(c); }
    }
    if (fds[1].revents & POLLIN) {
      char buf[512] = "echo:";
      struct sockaddr_in from; socklen_t len = sizeof from;
      ssize_t n = recvfrom(udp, buf + 5, sizeof buf - 5, 0, (struct sockaddr *)&from, &len);
      if (n >= 0) sendto(udp, buf, n + 5, 0, (struct sockaddr *)&from, len);
    }
  }
}

static int selfcheck(void) {
  char line[256];
  printf("uid=%d gid=%d\n", getuid(), getgid());
  FILE *status = fopen("/proc/self/status", "r");
  while (status && fgets(line, sizeof line, status))
    if (!strncmp(line, "CapEff:", 7) || !strncmp(line, "Seccomp:", 8) || !strncmp(line, "NoNewPrivs:", 11))
      fputs(line, stdout);
  int fd = open("/probe", O_CREAT | O_WRONLY, 0600);
  printf("rootfs-write=%s\n", fd >= 0 ? "ok" : strerror(errno));
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGTERM, down);
  signal(SIGINT, down);
  if (argc == 3 && !strcmp(argv[1], "serve")) return serve(atoi(argv[2]));
  if (argc == 2 && !strcmp(argv[1], "selfcheck")) return selfcheck();
  fprintf(stderr, "usage: echo serve PORT | echo selfcheck\n");
  return 2;
}
