#pragma once
// Mutual TLS between nodes. CAF's OpenSSL module aborts the process on some
// misconfigurations (a certificate without its key; a missing file on the
// first connection), so the files are checked here before CAF sees them.

#include "config/config.hpp"

#include <string>
#include <vector>

namespace inflow::cluster {

/// Every problem with the TLS files, each with what to do; empty when they are usable.
std::vector<config::config_error> check_tls_files(const config::tls_config& tls);

/// Logs every peer refused during the TLS handshake of cluster links (CAF does
/// not say). Call once, before the actor system loads the OpenSSL module.
void log_refused_tls_peers();

} // namespace inflow::cluster
