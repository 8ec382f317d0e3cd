// The Flink peer of bench/run: the job a Flink user writes for "embed every support message as
// it arrives", in Flink SQL on a local MiniCluster (parallelism = the machine's cores):
// Kafka source table -> ML_PREDICT over a CREATE MODEL ... 'provider' = 'openai' -> Kafka sink.
//
//   java -cp 'classes:jars/*' MlPredictJob BOOTSTRAP SOURCE_TOPIC SINK_TOPIC ENDPOINT MAX_CONCURRENT bounded|unbounded
//
// `bounded`: the source ends at the topic's end as of the job's start, so the job ends when
// every message is embedded; `unbounded` runs until killed. MAX_CONCURRENT 0 keeps Flink's
// default for table.exec.async-ml-predict.max-concurrent-operations. Checkpoints every 10 s,
// as a production job does (and so Flink's default restart strategy applies). Prints
// "running <epoch ms>" once the job is submitted and "finished <epoch ms>" when it ends; a
// failed job exits non-zero.

import org.apache.flink.configuration.Configuration;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;

public final class MlPredictJob {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], source = args[1], sink = args[2], endpoint = args[3];
        int maxConcurrent = Integer.parseInt(args[4]);
        boolean bounded = args[5].equals("bounded");

        Configuration conf = new Configuration();
        conf.setString("execution.checkpointing.interval", "10 s");
        if (maxConcurrent > 0) {
            conf.setString("table.exec.async-ml-predict.max-concurrent-operations", String.valueOf(maxConcurrent));
        }
        TableEnvironment env = TableEnvironment.create(
                EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build());

        env.executeSql("CREATE TABLE messages (message_id STRING, customer_id STRING, message STRING) WITH ("
                + "'connector' = 'kafka', 'topic' = '" + source + "', "
                + "'properties.bootstrap.servers' = '" + bootstrap + "', 'properties.group.id' = 'flink-peer', "
                + "'scan.startup.mode' = 'earliest-offset', "
                + (bounded ? "'scan.bounded.mode' = 'latest-offset', " : "")
                + "'format' = 'json')");
        env.executeSql("CREATE TABLE embeddings (message_id STRING, embedding ARRAY<FLOAT>) WITH ("
                + "'connector' = 'kafka', 'topic' = '" + sink + "', "
                + "'properties.bootstrap.servers' = '" + bootstrap + "', 'format' = 'json')");
        env.executeSql("CREATE MODEL embedder INPUT (message STRING) OUTPUT (embedding ARRAY<FLOAT>) WITH ("
                + "'provider' = 'openai', 'endpoint' = '" + endpoint + "/embeddings', "
                + "'api-key' = 'bench-key', 'model' = 'text-embedding-3-small')");

        TableResult job = env.executeSql("INSERT INTO embeddings SELECT message_id, embedding "
                + "FROM ML_PREDICT(TABLE messages, MODEL embedder, DESCRIPTOR(message))");
        System.out.println("running " + System.currentTimeMillis());
        System.out.flush();
        job.await();
        System.out.println("finished " + System.currentTimeMillis());
    }
}
