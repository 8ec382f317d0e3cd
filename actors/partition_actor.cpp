#include "actors/partition_actor.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <optional>

namespace inflow::actors {

namespace {

/// Delivery reports arrive on the producer's thread; forward them as messages.
class actor_delivery : public kafka::delivery_listener {
public:
  explicit actor_delivery(partition_actor target) : target_(std::move(target)) {}
  void on_delivery(uint64_t token, rd_kafka_resp_err_t error) override {
    caf::anon_send(target_, produce_ack{static_cast<int64_t>(token), error});
  }

private:
  partition_actor target_;
};

/// The sink's outside world, as seen from its actor.
class actor_outside : public outcome_sink::outside {
public:
  actor_outside(partition_actor::pointer self, kafka::producer& producer, kafka::producer& plain,
                std::vector<gateways::scorer_actor> versions)
    : self_(self),
      producer_(producer),
      plain_(plain),
      versions_(std::move(versions)),
      delivery_(std::make_shared<actor_delivery>(caf::actor_cast<partition_actor>(self))) {}

  rd_kafka_resp_err_t produce(const std::string& topic, std::string_view key, std::string_view value,
                              const std::vector<kafka::header>& headers, uint64_t token) override {
    return producer_.produce(topic, key, value, headers, delivery_, token);
  }
  std::string producer_failure() override {
    std::string reason;
    producer_.fatal_error(&reason);
    return reason;
  }
  rd_kafka_resp_err_t produce_shadow(const std::string& topic, std::string_view key, std::string_view value,
                                     uint64_t token) override {
    return plain_.produce(topic, key, value, {}, delivery_, token);
  }
  void call_model(size_t route, gateways::score_request request) override {
    self_->send(versions_.at(route), std::move(request));
  }
  void retry_after(std::chrono::milliseconds delay, uint64_t token) override {
    self_->delayed_send(self_, delay, retry_atom::value, static_cast<int64_t>(token));
  }
  void rewind_after(std::chrono::milliseconds delay) override {
    self_->delayed_send(self_, delay, rewind_atom::value);
  }
  void retry_schemas_after(std::chrono::milliseconds delay) override {
    self_->delayed_send(self_, delay, schema_atom::value);
  }
  int64_t now_ms() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
  }

private:
  partition_actor::pointer self_;
  kafka::producer& producer_;
  kafka::producer& plain_;
  std::vector<gateways::scorer_actor> versions_;
  std::shared_ptr<kafka::delivery_listener> delivery_;
};

struct partition_state {
  std::optional<actor_outside> outside;
  std::optional<outcome_sink> sink;
  static inline const char* name = "inflow.partition";
};

using partition_pointer = partition_actor::stateful_pointer<partition_state>;

partition_actor::behavior_type partition(partition_pointer self, std::shared_ptr<const pipeline_context> ctx,
                                         kafka::producer* producer, kafka::producer* plain,
                                         std::vector<gateways::scorer_actor> versions,
                                         std::shared_ptr<partition_shared> shared) {
  auto& st = self->state;
  st.outside.emplace(self, *producer, *plain, std::move(versions));
  st.sink.emplace(std::move(ctx), std::move(shared), *st.outside);
  auto& sink = *st.sink;
  // CAF's default prints to stdout and ends the actor: the partition would stall in silence.
  self->set_exception_handler([&sink](caf::scheduled_actor*, std::exception_ptr& e) -> caf::error {
    sink.fail(gateways::what_of(e));
    return caf::sec::runtime_error;
  });
  return {
    [&sink](std::shared_ptr<record_batch>& batch) { sink.on_batch(batch); },
    [&sink](gateways::score_reply& reply) { sink.on_scores(reply); },
    [&sink](const produce_ack& ack) { sink.on_ack(static_cast<uint64_t>(ack.token), ack.error); },
    [&sink](retry_atom, int64_t token) { sink.retry(static_cast<uint64_t>(token)); },
    [&sink](rewind_atom) { sink.rewind(); },
    [&sink](schema_atom) { sink.retry_schemas(); },
    [&sink](hold_atom, int64_t epoch) { sink.hold(epoch); },
    [&sink](release_atom) { sink.release(); },
  };
}

class actor_partition_handle : public partition_handle {
public:
  explicit actor_partition_handle(partition_actor actor) : actor_(std::move(actor)) {}
  void deliver(std::shared_ptr<record_batch> batch) override { caf::anon_send(actor_, std::move(batch)); }
  /// Returns once the actor has terminated: nothing it uses may be freed before.
  void stop() override {
    caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown);
    caf::scoped_actor waiter{actor_.home_system()};
    waiter->wait_for(actor_);
  }
  void hold(int64_t epoch) override { caf::anon_send(actor_, hold_atom::value, epoch); }
  void release() override { caf::anon_send(actor_, release_atom::value); }

private:
  partition_actor actor_;
};

} // namespace

std::unique_ptr<partition_handle> spawn_partition_actor(caf::actor_system& system,
                                                        std::shared_ptr<const pipeline_context> context,
                                                        kafka::producer& producer, kafka::producer& plain,
                                                        const std::vector<gateways::scorer_actor>& versions,
                                                        std::shared_ptr<partition_shared> shared) {
  return std::make_unique<actor_partition_handle>(
    system.spawn(partition, std::move(context), &producer, &plain, versions, std::move(shared)));
}

} // namespace inflow::actors
