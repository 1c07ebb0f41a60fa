#include "core/unix_socket.h"

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace vs {

static int make_addr(const std::string& path, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return -ENAMETOOLONG;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return 0;
}

int unix_listen(const std::string& path, int backlog) {
  sockaddr_un addr;
  if (int rc = make_addr(path, addr)) return rc;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || listen(fd, backlog) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

int unix_connect(const std::string& path) {
  sockaddr_un addr;
  if (int rc = make_addr(path, addr)) return rc;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  // AF_UNIX connect completes at once or fails (EAGAIN only when the backlog is full).
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

int unix_accept(int listen_fd) {
  int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

long unix_recv(int fd, void* buf, size_t len, std::vector<int>& fds) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  size_t first = fds.size();
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* data = CMSG_DATA(c);
    for (size_t i = 0; i < count; i++) {
      int f;
      std::memcpy(&f, data + i * sizeof(int), sizeof(int));
      fds.push_back(f);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    for (size_t i = first; i < fds.size(); i++) close(fds[i]);
    fds.resize(first);
    return -EMSGSIZE;
  }
  return n;
}

long unix_send(int fd, const void* buf, size_t len, const std::vector<int>& fds) {
  if (fds.size() > static_cast<size_t>(kMaxFdsPerMessage)) return -EINVAL;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  iovec iov{const_cast<void*>(buf), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

long unix_dgram_send(const std::string& path, const void* buf, size_t len) {
  sockaddr_un addr;
  if (int rc = make_addr(path, addr)) return rc;
  socklen_t alen = sizeof addr;
  if (path[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract: the name is exactly the bytes given, no terminating NUL
    alen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  ssize_t n;
  do n = sendto(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&addr), alen);
  while (n < 0 && errno == EINTR);
  long r = n < 0 ? -errno : n;
  close(fd);
  return r;
}

}  // namespace vs
