// AF_UNIX stream sockets with fd passing (SCM_RIGHTS), as vhost-user needs them, and the one datagram the
// service manager's notify socket takes. Plain POSIX, no Node types.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace vs {

// Maximum fds one vhost-user message may carry (VHOST_MEMORY_BASELINE_NREGIONS is 8; we allow a little more
// so that a message with too many fds is read whole and then refused, instead of having fds silently dropped).
constexpr int kMaxFdsPerMessage = 32;

// Each returns a non-negative fd, or -errno.
int unix_listen(const std::string& path, int backlog);
int unix_connect(const std::string& path);
int unix_accept(int listen_fd);  // -EAGAIN when nothing is pending

// One recvmsg(): returns bytes read (0 = EOF), or -errno (-EAGAIN when nothing is there). Received fds are
// appended to fds and are the caller's to close. MSG_CTRUNC (more fds than we have room for) closes what
// did arrive and returns -EMSGSIZE.
long unix_recv(int fd, void* buf, size_t len, std::vector<int>& fds);
// One sendmsg() carrying fds: returns bytes sent or -errno.
long unix_send(int fd, const void* buf, size_t len, const std::vector<int>& fds);

// One datagram to the AF_UNIX datagram socket at path ('@' first: the abstract namespace, as NOTIFY_SOCKET says
// it), from a socket of its own: returns bytes sent or -errno. For sd_notify(3) messages ("READY=1", ...).
long unix_dgram_send(const std::string& path, const void* buf, size_t len);

}  // namespace vs
