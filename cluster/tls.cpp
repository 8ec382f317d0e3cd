#include "cluster/tls.hpp"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <memory>

namespace inflow::cluster {

namespace {

struct file_closer {
  void operator()(FILE* f) const { std::fclose(f); }
};
using file_ptr = std::unique_ptr<FILE, file_closer>;
template <class T, void (*Free)(T*)>
struct openssl_deleter {
  void operator()(T* p) const { Free(p); }
};
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509, X509_free>>;
using key_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY, EVP_PKEY_free>>;
using store_ptr = std::unique_ptr<X509_STORE, openssl_deleter<X509_STORE, X509_STORE_free>>;
using store_ctx_ptr = std::unique_ptr<X509_STORE_CTX, openssl_deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;

std::string openssl_error() {
  auto e = ERR_get_error();
  ERR_clear_error();
  if (e == 0)
    return "not PEM";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

/// A passphrase callback that refuses: an encrypted key cannot be used unattended.
int no_passphrase(char*, int, int, void* asked) {
  *static_cast<bool*>(asked) = true;
  return -1;
}

} // namespace

std::vector<config::config_error> check_tls_files(const config::tls_config& tls) {
  std::vector<config::config_error> errors;
  auto fail = [&](const char* key, std::string message) {
    errors.push_back({std::string("cluster.tls.") + key, 0, std::move(message)});
  };
  auto open = [&](const char* key, const std::string& path) -> file_ptr {
    file_ptr f(std::fopen(path.c_str(), "r"));
    if (!f)
      fail(key, fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    return f;
  };
  x509_ptr cert, ca;
  key_ptr key;
  if (auto f = open("certificate", tls.certificate)) {
    cert.reset(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
    if (!cert)
      fail("certificate", fmt::format("{} holds no PEM certificate ({})", tls.certificate, openssl_error()));
  }
  if (auto f = open("key", tls.key)) {
    bool asked = false;
    key.reset(PEM_read_PrivateKey(f.get(), nullptr, no_passphrase, &asked));
    if (!key)
      fail("key", asked ? fmt::format("{} is encrypted; give the node an unencrypted key (file mode 0600)", tls.key)
                        : fmt::format("{} holds no PEM private key ({})", tls.key, openssl_error()));
  }
  if (auto f = open("ca_file", tls.ca_file)) {
    ca.reset(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
    if (!ca)
      fail("ca_file", fmt::format("{} holds no PEM CA certificate ({})", tls.ca_file, openssl_error()));
  }
  if (cert && key && X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    fail("key", fmt::format("{} is not the key of the certificate {}", tls.key, tls.certificate));
  }
  if (cert && ca) {
    store_ptr store(X509_STORE_new());
    X509_STORE_add_cert(store.get(), ca.get());
    store_ctx_ptr ctx(X509_STORE_CTX_new());
    X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr);
    if (X509_verify_cert(ctx.get()) != 1)
      fail("certificate", fmt::format("{} does not verify against the CA in {}: {}", tls.certificate, tls.ca_file,
                                      X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()))));
    ERR_clear_error();
  }
  return errors;
}

namespace {

std::atomic<bool> logging_refusals{false};

std::string peer_of(const SSL* ssl) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getpeername(SSL_get_fd(ssl), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return "unknown peer";
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (addr.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return fmt::format("{}:{}", host, port);
}

/// A fatal alert ends a link: sent, this node refused the peer; received, the peer refused this node.
void on_tls_event(const SSL* ssl, int where, int value) {
  if (!(where & SSL_CB_ALERT) || std::string_view(SSL_alert_type_string(value)) != "F")
    return;
  if (where & SSL_CB_WRITE)
    spdlog::warn("cluster: refused TLS peer {}: {}", peer_of(ssl), SSL_alert_desc_string_long(value));
  else
    spdlog::warn("cluster: TLS peer {} refused this node: {} (a certificate from another CA?)", peer_of(ssl),
                 SSL_alert_desc_string_long(value));
}

} // namespace

void log_refused_tls_peers() {
  logging_refusals = true;
}

} // namespace inflow::cluster

// CAF's OpenSSL module offers no hooks, so the executable interposes a few
// OpenSSL calls (it defines them; the dynamic linker binds CAF's calls here).
namespace {

template <class Fn>
Fn real(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

} // namespace

extern "C" {

/// Called on every context CAF creates: adds the refusal log to those that
/// require peer certificates (only CAF's cluster contexts do).
void SSL_CTX_set_verify(SSL_CTX* ctx, int mode, SSL_verify_cb callback) {
  static auto set_verify = real<void (*)(SSL_CTX*, int, SSL_verify_cb)>("SSL_CTX_set_verify");
  set_verify(ctx, mode, callback);
  if (inflow::cluster::logging_refusals && (mode & SSL_VERIFY_FAIL_IF_NO_PEER_CERT))
    SSL_CTX_set_info_callback(ctx, inflow::cluster::on_tls_event);
}

// CAF never clears OpenSSL's per-thread error queue. After one refused
// handshake the stale error makes SSL_get_error() report every later
// "want read" on the same thread as fatal, and CAF drops healthy links. OpenSSL
// requires an empty queue before each I/O call: empty it here.
int SSL_read(SSL* ssl, void* buf, int num) {
  static auto read = real<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return read(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto write = real<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return write(ssl, buf, num);
}

int SSL_accept(SSL* ssl) {
  static auto accept = real<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return accept(ssl);
}

int SSL_connect(SSL* ssl) {
  static auto connect = real<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return connect(ssl);
}

} // extern "C"
