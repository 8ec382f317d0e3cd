// Checked against AWS's published Signature Version 4 test suite
// (credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1, service "service").

#include "gateways/common/sigv4.hpp"

#include <catch2/catch.hpp>

using namespace inflow::gateways::sigv4;

namespace {

const credentials example{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};

signature suite(const std::string& method, const std::string& path, header_list query = {}) {
  request r{method, path, std::move(query),
            {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}}, ""};
  return sign(r, example, "us-east-1", "service", "20150830T123600Z");
}

} // namespace

TEST_CASE("SigV4 get-vanilla: canonical request, string to sign and signature") {
  auto s = suite("GET", "/");
  CHECK(s.canonical_request ==
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(s.string_to_sign == "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
                            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  CHECK(s.authorization == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                           "SignedHeaders=host;x-amz-date, "
                           "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST_CASE("SigV4 post-vanilla") {
  auto s = suite("POST", "/");
  CHECK(s.string_to_sign == "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
                            "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87");
  CHECK(s.signature_hex == "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

TEST_CASE("SigV4 query ordering, encoded paths") {
  // get-vanilla-query-order-key-case
  CHECK(suite("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}).signature_hex ==
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  // post-vanilla-query
  CHECK(suite("POST", "/", {{"Param1", "value1"}}).signature_hex ==
        "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11");
  // get-utf8: the path is "/ሴ"
  CHECK(suite("GET", "/\xe1\x88\xb4").signature_hex ==
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
  // get-space
  CHECK(suite("GET", "/example space/").signature_hex ==
        "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741");
}
