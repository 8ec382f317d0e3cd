#include "serve/reply_server.hpp"

#include "http/server.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <map>
#include <sstream>
#include <vector>

namespace inflow::serve {

namespace {

struct faq_entry {
  const char* question; ///< how customers ask it: the words it is matched on
  const char* answer;
};

const std::array<faq_entry, 5> faq{{
  {"lost stolen missing card wallet cannot find block it", "We have blocked your card so nobody can use it. "
                                                           "Order a replacement in the app under Cards > Replace."},
  {"charge statement recognise unknown billed twice merchant goods never received refund dispute",
   "You can dispute the charge in the app under Transactions > Report a problem. We will refund it while we look "
   "into it."},
  {"travelling travel abroad trip holiday country declined shop will my card work tell you",
   "Your card works abroad; no travel notice is needed. If a payment abroad was declined, check in the app that "
   "payments abroad are switched on."},
  {"higher credit limit raise spending increase big purchase too low",
   "You can ask for a higher limit in the app under Cards > Limits. We answer within one business day."},
  {"pin forgot blocked wrong tries change", "You can see or change your PIN in the app under Cards > PIN. After three "
                                            "wrong tries it unblocks at any cash machine with the right PIN."},
}};

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::string w;
  for (char c : text + " ") {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      w += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!w.empty()) {
      out.push_back(std::move(w));
      w.clear();
    }
  }
  return out;
}

/// TF-IDF vectors of the FAQ questions, built once.
struct index {
  std::map<std::string, double> idf;
  std::vector<std::map<std::string, double>> docs;

  index() {
    std::map<std::string, int> df;
    for (const auto& e : faq) {
      std::map<std::string, double> tf;
      for (auto& w : words(e.question))
        tf[w] += 1;
      for (auto& [w, n] : tf)
        ++df[w];
      docs.push_back(std::move(tf));
    }
    for (auto& [w, n] : df)
      idf[w] = std::log(static_cast<double>(faq.size() + 1) / n);
    for (auto& d : docs)
      weigh(d);
  }
  void weigh(std::map<std::string, double>& v) const {
    double norm = 0;
    for (auto& [w, x] : v) {
      auto it = idf.find(w);
      x *= it == idf.end() ? 0 : it->second;
      norm += x * x;
    }
    for (auto& [w, x] : v)
      x /= norm > 0 ? std::sqrt(norm) : 1;
  }
  size_t closest(const std::string& message) const {
    std::map<std::string, double> q;
    for (auto& w : words(message))
      q[w] += 1;
    weigh(q);
    size_t best = 0;
    double best_score = -1;
    for (size_t i = 0; i < docs.size(); ++i) {
      double dot = 0;
      for (auto& [w, x] : q)
        if (auto it = docs[i].find(w); it != docs[i].end())
          dot += x * it->second;
      if (dot > best_score)
        best_score = dot, best = i;
    }
    return best;
  }
};

const index& faq_index() {
  static const index i;
  return i;
}

http::response error(int status, const std::string& message) {
  return {status, "application/json",
          nlohmann::json{{"error", {{"message", message}, {"type", "invalid_request_error"}}}}.dump()};
}

} // namespace

std::string reply_server::answer(const std::string& message) {
  return faq[faq_index().closest(message)].answer;
}

struct reply_server::impl {
  std::string token;
  std::unique_ptr<http::server> server;

  http::response handle(const http::request& r) const {
    if (r.target == "/health")
      return {200, "text/plain", "ok\n"};
    if (!token.empty() && !http::bearer_matches(r, token))
      return error(401, "missing or wrong bearer token");
    if (r.method != "POST" || r.target != "/v1/chat/completions")
      return error(404, "only POST /v1/chat/completions is served here");
    auto body = nlohmann::json::parse(r.body, nullptr, false);
    if (body.is_discarded() || !body.contains("messages") || !body["messages"].is_array())
      return error(400, "expected a JSON body with `messages`");
    std::string prompt, message; // the customer's words are the last user message
    for (const auto& m : body["messages"])
      if (m.is_object() && m.value("content", nlohmann::json()).is_string()) {
        prompt += m["content"].get<std::string>() + " ";
        if (m.value("role", "") == "user")
          message = m["content"].get<std::string>();
      }
    if (message.empty())
      return error(400, "no user message to answer");
    const std::string reply = answer(message);
    const auto prompt_tokens = words(prompt).size(), reply_tokens = words(reply).size();
    nlohmann::json out{
      {"id", "chatcmpl-inflow-faq"},
      {"object", "chat.completion"},
      {"created", std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                    .count()},
      {"model", body.value("model", "inflow-faq")},
      {"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", reply}}}, {"finish_reason", "stop"}}}},
      {"usage",
       {{"prompt_tokens", prompt_tokens}, {"completion_tokens", reply_tokens}, {"total_tokens", prompt_tokens + reply_tokens}}}};
    return {200, "application/json", out.dump()};
  }
};

reply_server::reply_server(const std::string& host, uint16_t port, std::string token) : impl_(new impl) {
  impl_->token = std::move(token);
  impl_->server = std::make_unique<http::server>(host, port, [this](const http::request& r) { return impl_->handle(r); });
}

reply_server::~reply_server() = default;

uint16_t reply_server::port() const {
  return impl_->server->port();
}

} // namespace inflow::serve
