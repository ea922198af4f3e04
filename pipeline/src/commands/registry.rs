//! `twinline registry`: serves the Confluent Schema Registry REST API with the schemas kept in a
//! compacted Kafka topic (see `twinline_registry`), so third-party producers and consumers
//! (confluent-kafka, Kafka Connect, ...) and twinline instances share one set of schema ids.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use clap::Args;
use tracing::info;
use twinline_registry::{KafkaRegistry, KafkaRegistryConfig};
use twinline_schemas::SchemaRegistry;

use crate::config::Config;

#[derive(Args, Debug)]
pub struct RegistryArgs {
    /// Kafka bootstrap servers holding the registry topic (default from config
    /// `distributed.kafka`).
    #[arg(long, env = "TWINLINE_KAFKA")]
    pub kafka: Option<String>,
    /// Address to serve the REST API on.
    #[arg(
        long,
        env = "TWINLINE_REGISTRY_LISTEN",
        default_value = "127.0.0.1:18081"
    )]
    pub listen: SocketAddr,
    /// The compacted topic holding the schemas (default from config `distributed.registry_topic`).
    #[arg(long)]
    pub topic: Option<String>,
    /// Also register twinline's own schemas (every topic's `<topic>-value` subject) at startup.
    #[arg(long)]
    pub register_builtin: bool,
}

pub fn run(cfg: Config, args: RegistryArgs) -> Result<()> {
    let brokers = args
        .kafka
        .clone()
        .or_else(|| (!cfg.distributed.kafka.is_empty()).then(|| cfg.distributed.kafka.clone()));
    let Some(brokers) = brokers else {
        bail!("twinline registry needs Kafka: pass --kafka <brokers> (or set TWINLINE_KAFKA or distributed.kafka)");
    };
    let mut rc = KafkaRegistryConfig::new(brokers.clone());
    rc.topic = args
        .topic
        .clone()
        .unwrap_or_else(|| cfg.distributed.registry_topic.clone());
    rc.replication = cfg.distributed.replication;
    let topic = rc.topic.clone();
    let registry = std::sync::Arc::new(
        KafkaRegistry::open(rc)
            .with_context(|| format!("opening the registry topic {topic} on {brokers}"))?,
    );
    if args.register_builtin {
        twinline_schemas::Codec::new(registry.clone() as std::sync::Arc<dyn SchemaRegistry>)
            .context("registering twinline's schemas")?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        info!(listen = %listener.local_addr()?, %brokers, %topic, "schema registry serving");
        let app = twinline_registry::server::router(registry);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving the registry API")
    })
}
