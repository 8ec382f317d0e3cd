#include "kafka/produce_errors.hpp"

#include <catch2/catch.hpp>

using namespace inflow::kafka;

TEST_CASE("write errors are classified by what they mean for the record") {
  // Transient: the broker recovers on its own.
  CHECK(classify_write_error(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION) == write_failure::retriable);
  CHECK(classify_write_error(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT) == write_failure::retriable);
  CHECK(classify_write_error(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS) == write_failure::retriable);
  CHECK(classify_write_error(RD_KAFKA_RESP_ERR__TRANSPORT) == write_failure::retriable);
  // This record, as it is, never.
  CHECK(classify_write_error(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) == write_failure::unwritable);
  CHECK(classify_write_error(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) == write_failure::unwritable);
  CHECK(classify_write_error(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) == write_failure::unwritable);
  CHECK(classify_write_error(RD_KAFKA_RESP_ERR_INVALID_RECORD) == write_failure::unwritable);
  CHECK(classify_write_error(RD_KAFKA_RESP_ERR_POLICY_VIOLATION) == write_failure::unwritable);
  // The producer itself is done for.
  CHECK(classify_write_error(RD_KAFKA_RESP_ERR__FATAL) == write_failure::fatal);
  CHECK(classify_write_error(RD_KAFKA_RESP_ERR_PRODUCER_FENCED) == write_failure::fatal);
  CHECK(classify_write_error(RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER) == write_failure::fatal);
}
