#pragma once
// A support-reply model behind OpenAI's chat completions API (POST /v1/chat/completions): it
// answers with the entry of a card issuer's support FAQ closest to the customer's message
// (TF-IDF cosine over words), and reports token usage as OpenAI does. `inflow demo --use-case
// support` and `inflow serve --support-replies` run it so that the support pipeline runs without
// an API key; in production any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp) is the
// `endpoint` instead. It is a retrieval model, not a language model: it picks, it does not write.

#include <cstdint>
#include <memory>
#include <string>

namespace inflow::serve {

class reply_server {
public:
  /// `token`: non-empty, every request needs `Authorization: Bearer <token>`.
  reply_server(const std::string& host, uint16_t port, std::string token = {});
  ~reply_server();
  uint16_t port() const;

  /// The FAQ answer for a message, as the endpoint gives it.
  static std::string answer(const std::string& message);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace inflow::serve
