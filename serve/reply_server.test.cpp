#include "events/use_cases.hpp"
#include "serve/reply_server.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <array>

using inflow::serve::reply_server;

TEST_CASE("the support replies answer every generated message with its topic's FAQ entry") {
  // Each topic's answer names what it is about (support_topics() order).
  const std::array<const char*, 5> marks{"blocked your card", "dispute the charge", "works abroad", "higher limit",
                                         "your PIN"};
  auto source = inflow::events::message_source(7);
  for (int i = 0; i < 500; ++i) {
    auto s = source(0);
    auto message = nlohmann::json::parse(s.json)["message"].get<std::string>();
    INFO(message);
    CHECK(reply_server::answer(message).find(marks[static_cast<size_t>(s.label)]) != std::string::npos);
  }
}
