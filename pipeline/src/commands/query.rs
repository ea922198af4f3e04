//! `twinline query`: fold a data directory's log into the views and run one read-only SQL query.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::config::Config;
use crate::runtime::viewfeed::ViewFeeder;
use crate::store::Store;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The SQL (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE; nothing that writes).
    pub sql: String,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Row limit (default from config api.query_max_rows).
    #[arg(long)]
    pub max_rows: Option<usize>,
}

pub fn run(cfg: Config, args: QueryArgs) -> Result<()> {
    let dir = args.data.clone().unwrap_or_else(|| cfg.data.dir.clone());
    let store = Store::open_read_only(&dir)?;
    let views = Arc::new(twinline_queries::views::Views::new(super::view_config(
        &cfg,
    )));
    ViewFeeder::new(store.log_dyn(), store.codec.clone(), views.clone())?
        .catch_up()
        .context("reading the log")?;
    let history = existing_history(&cfg, &dir)?;
    let (log, codec) = (store.log_dyn(), store.codec.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let engine = twinline_queries::sql::QueryEngine::new(views, super::query_config(&cfg))?;
        twinline_sinks::history::register(&engine, history, log, codec)?;
        engine.query(&args.sql, args.max_rows).await
    })?;
    let out = match args.format {
        Format::Table => arrow::util::pretty::pretty_format_batches(&result.batches)?.to_string(),
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(Vec::new());
            for b in &result.batches {
                w.write(b)?;
            }
            w.finish()?;
            let bytes = w.into_inner();
            if bytes.is_empty() {
                "[]".to_string()
            } else {
                String::from_utf8(bytes)?
            }
        }
        Format::Csv => {
            let mut w = arrow::csv::Writer::new(Vec::new());
            for b in &result.batches {
                w.write(b)?;
            }
            String::from_utf8(w.into_inner())?
        }
    };
    println!("{out}");
    if result.truncated {
        eprintln!("(truncated to the row limit)");
    }
    Ok(())
}

/// The history of `dir` when it has one (a read-only query never creates it).
fn existing_history(
    cfg: &Config,
    dir: &std::path::Path,
) -> Result<Option<Arc<twinline_sinks::history::HistoryStore>>> {
    let hcfg = cfg.history.resolve(dir);
    let local = !hcfg.path.contains("://");
    if local
        && !std::path::Path::new(&hcfg.path)
            .join(twinline_sinks::history::MANIFEST)
            .exists()
    {
        return Ok(None);
    }
    Ok(Some(crate::embedded::open_history(&hcfg.path)?))
}
