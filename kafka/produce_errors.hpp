#pragma once
// What a failed write (a delivery report's error) means for the record behind it.

#include <librdkafka/rdkafka.h>

namespace inflow::kafka {

enum class write_failure {
  retriable,  ///< write it again after a backoff
  unwritable, ///< this record can never be written as it is: dead-letter it, or apply on_unwritable
  fatal,      ///< the producer is unusable (idempotence broken, fenced): nothing more can be written
};

write_failure classify_write_error(rd_kafka_resp_err_t error);
const char* to_string(write_failure f);

} // namespace inflow::kafka
