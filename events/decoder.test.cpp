#include "events/decoder.hpp"
#include "events/features.hpp"
#include "events/generator.hpp"

#include <catch2/catch.hpp>
#include <msgpack.hpp>

using namespace inflow::events;

namespace {

feature_map fraud_like_map() {
  return feature_map({"amount", "amount / amount_avg_30d", "card_present", "channel == online", "mcc == 4829"});
}

std::optional<decode_failure> run(wire_format f, std::string_view bytes, std::vector<float>& row,
                                  record_identity& id, decoder_limits limits = {}) {
  auto map = fraud_like_map();
  decoder d(f, map.fields(), limits);
  std::vector<field_value> values;
  if (auto err = d.decode(bytes, values))
    return err;
  row.resize(map.size());
  return map.extract(values, row.data(), id);
}

} // namespace

TEST_CASE("generated transactions decode from JSON and msgpack to the same row") {
  generator gen(7, 0.5);
  for (int i = 0; i < 50; ++i) {
    auto tx = gen.next(1'700'000'000'000 + i).tx;
    std::vector<float> from_json, from_msgpack;
    record_identity a, b;
    REQUIRE_FALSE(run(wire_format::json, to_json(tx), from_json, a));
    REQUIRE_FALSE(run(wire_format::msgpack, to_msgpack(tx), from_msgpack, b));
    CHECK(a.id == tx.id);
    CHECK(b.key == tx.card_id);
    CHECK(from_json[2] == (tx.card_present ? 1.0f : 0.0f));
    CHECK(from_json[3] == (tx.channel == "online" ? 1.0f : 0.0f));
    CHECK(from_json[4] == (tx.mcc == 4829 ? 1.0f : 0.0f));
    CHECK(from_json[0] == Approx(tx.amount).epsilon(0.01));
    CHECK(from_msgpack[0] == Approx(tx.amount).epsilon(1e-6));
  }
}

TEST_CASE("poison JSON records fail with the right error") {
  std::vector<float> row;
  record_identity id;
  auto code = [&](std::string_view bytes, decoder_limits limits = {}) {
    auto err = run(wire_format::json, bytes, row, id, limits);
    return err ? err->code : record_error{};
  };
  const std::string ok = R"({"id":"t1","card_id":"c1","amount":10,"amount_avg_30d":5,"card_present":true,)"
                         R"("channel":"online","mcc":4829})";
  CHECK(code(ok) == record_error{});
  CHECK(row == std::vector<float>{10, 2, 1, 1, 1});
  CHECK(code("") == record_error::empty);
  CHECK(code(ok.substr(0, ok.size() - 9)) == record_error::invalid_json);
  CHECK(code("not json at all") == record_error::invalid_json);
  CHECK(code("\xff\xfe\x00garbage") == record_error::invalid_json);
  CHECK(code("[1,2,3]") == record_error::not_an_object);
  CHECK(code("42") == record_error::not_an_object);
  CHECK(code(std::string(100, '[') + std::string(100, ']')) == record_error::too_deep);
  CHECK(code(ok, {64, 32}) == record_error::oversized);
  CHECK(code(R"({"id":"t1","card_id":"c1"})") == record_error::missing_field);
  CHECK(code(R"({"id":"t1","card_id":"c1","amount":"10","amount_avg_30d":5,"card_present":true,)"
             R"("channel":"online","mcc":1})") == record_error::wrong_type);
  CHECK(code(R"({"id":[7],"card_id":"c1"})") == record_error::wrong_type);
  CHECK(code(R"({"id":"t1","card_id":"c1","amount":null,"amount_avg_30d":5,"card_present":true,)"
             R"("channel":"online","mcc":1})") == record_error::missing_field);
  CHECK(code(R"({"id":"t1","card_id":"c1","amount":{"v":1},"amount_avg_30d":5,"card_present":true,)"
             R"("channel":"online","mcc":1})") == record_error::wrong_type);
}

TEST_CASE("poison msgpack records fail with the right error") {
  std::vector<float> row;
  record_identity id;
  auto code = [&](std::string_view bytes) {
    auto err = run(wire_format::msgpack, bytes, row, id);
    return err ? err->code : record_error{};
  };
  generator gen(1);
  auto good = to_msgpack(gen.next(0).tx);
  CHECK(code(good) == record_error{});
  CHECK(code(good.substr(0, good.size() / 2)) == record_error::invalid_msgpack);
  CHECK(code(good + "x") == record_error::invalid_msgpack);
  CHECK(code("\xc1") == record_error::invalid_msgpack); // never-used type byte
  msgpack::sbuffer arr;
  msgpack::pack(arr, std::vector<int>{1, 2});
  CHECK(code({arr.data(), arr.size()}) == record_error::not_an_object);
  std::string deep(100, '\x91'); // arrays of one element, nested 100 deep
  deep += '\x01';
  CHECK(code(deep) == record_error::too_deep);
}

TEST_CASE("integer ids above 2^53 stay exact and distinct, from JSON and msgpack") {
  auto m = feature_map({"amount"}, {"id", "card_id"});
  record_identity a, b;
  float row = 0;
  for (auto format : {wire_format::json, wire_format::msgpack}) {
    decoder d(format, m.fields(), {});
    std::vector<field_value> values;
    auto ids_of = [&](uint64_t id, record_identity& out) {
      std::string bytes;
      if (format == wire_format::json) {
        bytes = R"({"id":)" + std::to_string(id) + R"(,"card_id":-9007199254740993,"amount":1234567890123456789})";
      } else {
        msgpack::sbuffer buffer;
        msgpack::packer<msgpack::sbuffer> pk(buffer);
        pk.pack_map(3);
        pk.pack(std::string("id")), pk.pack(id);
        pk.pack(std::string("card_id")), pk.pack(int64_t{-9007199254740993});
        pk.pack(std::string("amount")), pk.pack(uint64_t{1234567890123456789});
        bytes.assign(buffer.data(), buffer.size());
      }
      REQUIRE_FALSE(d.decode(bytes, values));
      REQUIRE_FALSE(m.extract(values, &row, out));
    };
    ids_of(1234567890123456789u, a);
    ids_of(1234567890123456790u, b);
    CHECK(a.id == "1234567890123456789");
    CHECK(b.id == "1234567890123456790");
    CHECK(a.key == "-9007199254740993");
    CHECK(row == Approx(1.2345679e18f)); // as a feature, the number rounded
  }
}

TEST_CASE("ids given as numbers of any size become text without overflowing") {
  auto m = feature_map({"amount"}, {"id", "card_id"});
  decoder d(wire_format::json, m.fields(), {});
  auto id_of = [&](const std::string& number) {
    std::vector<field_value> values;
    REQUIRE_FALSE(d.decode(R"({"id":)" + number + R"(,"card_id":"c","amount":1})", values));
    record_identity out;
    float row = 0;
    REQUIRE_FALSE(m.extract(values, &row, out));
    return out.id;
  };
  CHECK(id_of("42.0") == "42");
  CHECK(id_of("2.5") == "2.5");
  CHECK(id_of("-1e3") == "-1000");
  CHECK(id_of("1.23457e133") == "1.23457e+133"); // found by fuzz/record_decoder: the cast was undefined
  CHECK(id_of("-9.3e18") == "-9.3e+18");
}

TEST_CASE("one field may be both the id and the key") {
  auto m = feature_map::text("{title}", {"product_id", "product_id"});
  decoder d(wire_format::json, m.fields(), {});
  std::vector<field_value> values;
  REQUIRE_FALSE(d.decode(R"({"product_id":"p-7","title":"lamp"})", values));
  record_identity id;
  std::string text;
  REQUIRE_FALSE(m.extract_text(values, text, id));
  CHECK(id.id == "p-7");
  CHECK(id.key == "p-7");
  CHECK(text == "lamp");
}

TEST_CASE("msgpack strings must be UTF-8, as alerts are JSON") {
  auto m = feature_map({"amount"}, {"id", "card_id"});
  decoder d(wire_format::msgpack, m.fields(), {});
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(3);
  pk.pack(std::string("id")), pk.pack(std::string("tx\xff\xfe"));
  pk.pack(std::string("card_id")), pk.pack(std::string("c"));
  pk.pack(std::string("amount")), pk.pack(1.0);
  std::vector<field_value> values;
  auto err = d.decode({buffer.data(), buffer.size()}, values);
  REQUIRE(err);
  CHECK(err->code == record_error::invalid_msgpack);
  CHECK_THAT(err->message, Catch::Contains("'id' is not valid UTF-8"));
}

TEST_CASE("text templates render fields and need them") {
  auto m = feature_map::text("Customer {customer}: {message} ({n})", {"message_id", "customer"});
  CHECK(m.is_text());
  CHECK(m.fields() == std::vector<std::string>{"message_id", "customer", "message", "n"});
  decoder d(wire_format::json, m.fields(), {});
  std::vector<field_value> values;
  REQUIRE_FALSE(d.decode(R"({"message_id":42,"customer":"c-1","message":"Where is my card?","n":3})", values));
  std::string text;
  record_identity id;
  REQUIRE_FALSE(m.extract_text(values, text, id));
  CHECK(text == "Customer c-1: Where is my card? (3)");
  CHECK(id.id == "42");
  REQUIRE_FALSE(d.decode(R"({"message_id":"m","customer":"c"})", values));
  CHECK(m.extract_text(values, text, id)->code == record_error::missing_field);
  CHECK_THROWS_WITH(feature_map::text("no fields"), Catch::Contains("names no field"));
  CHECK_THROWS_WITH(feature_map::text("{unclosed"), Catch::Contains("without"));
}

TEST_CASE("feature expressions are checked when the config is loaded") {
  CHECK_THROWS_WITH(feature_map({"amount +"}), Catch::Contains("expected `field`"));
  CHECK_THROWS_WITH(feature_map({"channel =="}), Catch::Contains("nothing to compare"));
  CHECK_THROWS(feature_map(std::vector<std::string>{}));
  auto m = feature_map({"a", "b / a", "c == 'x y'"});
  CHECK(m.fields() == std::vector<std::string>{"id", "card_id", "a", "b", "c"});
}

TEST_CASE("the generator is deterministic and produces fraud at the asked rate") {
  generator a(99, 0.05), b(99, 0.05);
  int fraud = 0;
  for (int i = 0; i < 20000; ++i) {
    auto x = a.next(i), y = b.next(i);
    CHECK(to_json(x.tx) == to_json(y.tx));
    fraud += x.fraud;
  }
  CHECK(fraud > 800);
  CHECK(fraud < 1200);
}

TEST_CASE("nested fields are read by a dotted path, from JSON and msgpack") {
  auto m = feature_map({"payment.amount", "payment.card.present", "merchant.mcc == 5411"}, {"id", "customer.id"});
  for (auto format : {wire_format::json, wire_format::msgpack}) {
    decoder d(format, m.fields(), {});
    std::vector<field_value> values;
    std::string bytes;
    if (format == wire_format::json) {
      bytes = R"({"id":"t1","customer":{"id":"c9"},"merchant":{"mcc":5411},)"
              R"("payment":{"amount":12.5,"card":{"present":true}}})";
    } else {
      msgpack::sbuffer buffer;
      msgpack::packer<msgpack::sbuffer> pk(buffer);
      pk.pack_map(4);
      pk.pack(std::string("id")), pk.pack(std::string("t1"));
      pk.pack(std::string("customer")), pk.pack_map(1), pk.pack(std::string("id")), pk.pack(std::string("c9"));
      pk.pack(std::string("merchant")), pk.pack_map(1), pk.pack(std::string("mcc")), pk.pack(5411);
      pk.pack(std::string("payment")), pk.pack_map(2), pk.pack(std::string("amount")), pk.pack(12.5);
      pk.pack(std::string("card")), pk.pack_map(1), pk.pack(std::string("present")), pk.pack(true);
      bytes.assign(buffer.data(), buffer.size());
    }
    REQUIRE_FALSE(d.decode(bytes, values));
    float row[3];
    record_identity id;
    REQUIRE_FALSE(m.extract(values, row, id));
    CHECK(id.key == "c9");
    CHECK(row[0] == 12.5f);
    CHECK(row[1] == 1.0f);
    CHECK(row[2] == 1.0f);
  }
  // A top-level key spelled with the dot wins; a path through a non-object is missing.
  decoder d(wire_format::json, m.fields(), {});
  std::vector<field_value> values;
  REQUIRE_FALSE(d.decode(R"({"id":"t","customer.id":"flat","payment":5})", values));
  float row[3];
  record_identity id;
  auto err = m.extract(values, row, id);
  CHECK(id.key == "flat");
  REQUIRE(err);
  CHECK(err->code == record_error::missing_field);
  CHECK(err->message == "missing field 'payment.amount'");
}

TEST_CASE("with missing values allowed, an absent feature is NaN; identity fields stay required") {
  auto m = feature_map({"amount", "score_a / score_b", "channel == online"}, {"id", "card_id"});
  m.allow_missing(true);
  decoder d(wire_format::json, m.fields(), {});
  std::vector<field_value> values;
  REQUIRE_FALSE(d.decode(R"({"id":"t","card_id":"c","score_b":2})", values));
  float row[3];
  record_identity id;
  REQUIRE_FALSE(m.extract(values, row, id));
  CHECK(std::isnan(row[0]));
  CHECK(std::isnan(row[1]));
  CHECK(std::isnan(row[2]));
  REQUIRE_FALSE(d.decode(R"({"id":"t","card_id":"c","amount":"lots"})", values));
  CHECK(m.extract(values, row, id)->code == record_error::wrong_type); // present but wrong: still a dead letter
  REQUIRE_FALSE(d.decode(R"({"id":"t","amount":1})", values));
  CHECK(m.extract(values, row, id)->code == record_error::missing_field);
}

TEST_CASE("a decoder's reused values hold only the current record's fields") {
  std::vector<field_value> values;
  decoder json(wire_format::json, {"channel", "payment.amount", "mcc"}, {});
  REQUIRE_FALSE(json.decode(R"({"channel":"a channel name longer than the short-string buffer","mcc":5411,)"
                            R"("payment":{"amount":12.5}})",
                            values));
  CHECK(std::get<std::string>(values[0]) == "a channel name longer than the short-string buffer");
  CHECK(std::get<double>(values[1]) == 12.5);
  REQUIRE_FALSE(json.decode(R"({"channel":"pos","payment.amount":null,"payment":{"amount":3}})", values));
  CHECK(std::get<std::string>(values[0]) == "pos");
  CHECK(std::get<double>(values[1]) == 3); // a top-level null does not hide the nested field
  CHECK(std::holds_alternative<std::monostate>(values[2]));
  REQUIRE_FALSE(json.decode(R"({"mcc":"x"})", values));
  CHECK(std::holds_alternative<std::monostate>(values[0]));
  CHECK(std::holds_alternative<std::monostate>(values[1]));
  CHECK(json.decode("{", values));
  for (const auto& v : values) // a record that fails leaves nothing of the one before
    CHECK(std::holds_alternative<std::monostate>(v));

  decoder packed(wire_format::msgpack, {"channel", "mcc"}, {});
  auto pack = [](bool with_channel) {
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> pk(buffer);
    pk.pack_map(with_channel ? 2 : 1);
    if (with_channel) {
      pk.pack(std::string("channel"));
      pk.pack(std::string("online"));
    }
    pk.pack(std::string("mcc"));
    pk.pack(7995);
    return std::string(buffer.data(), buffer.size());
  };
  REQUIRE_FALSE(packed.decode(pack(true), values));
  CHECK(std::get<std::string>(values[0]) == "online");
  REQUIRE_FALSE(packed.decode(pack(false), values));
  CHECK(std::holds_alternative<std::monostate>(values[0]));
  CHECK(std::get<double>(values[1]) == 7995);
}

TEST_CASE("an empty key is a key like any other, matching no field") {
  std::vector<field_value> values;
  decoder packed(wire_format::msgpack, {"mcc"}, {});
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(2);
  pk.pack_str(0); // msgpack-c gives an empty string no data pointer (found by the fuzzer)
  pk.pack(1);
  pk.pack(std::string("mcc"));
  pk.pack(4829);
  REQUIRE_FALSE(packed.decode({buffer.data(), buffer.size()}, values));
  CHECK(std::get<double>(values[0]) == 4829);
  decoder json(wire_format::json, {"mcc"}, {});
  REQUIRE_FALSE(json.decode(R"({"":1,"mcc":4829})", values));
  CHECK(std::get<double>(values[0]) == 4829);
}
