//! DataFusion adapters: a view as a read-only `TableProvider` (a scan snapshots the view) and
//! [`Views`] as a `SchemaProvider` so that every registered view is a SQL table.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::{SharedView, Views};

/// A read-only table over one view. Each scan takes a snapshot under the view's lock; the
/// query then runs on that snapshot without blocking `apply`.
pub struct ViewTable {
    schema: SchemaRef,
    view: SharedView,
}

impl ViewTable {
    pub(crate) fn new(schema: SchemaRef, view: SharedView) -> Self {
        ViewTable { schema, view }
    }
}

impl fmt::Debug for ViewTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewTable")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TableProvider for ViewTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        // A view, not a base table: DataFusion then refuses DML against it.
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut batches = self.view.lock().snapshot();
        if let Some(limit) = limit {
            // No filters are pushed down (the default Unsupported), so a limit here is a true row
            // limit and later batches need not be copied into the plan.
            let mut rows = 0;
            let keep = batches
                .iter()
                .position(|b| {
                    rows += b.num_rows();
                    rows >= limit
                })
                .map_or(batches.len(), |i| i + 1);
            batches.truncate(keep);
        }
        let exec: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&[batches], self.schema.clone(), projection.cloned())?;
        Ok(exec)
    }
}

/// Every registered view as a table of one DataFusion schema.
pub struct ViewsSchema {
    views: Arc<Views>,
}

impl ViewsSchema {
    pub fn new(views: Arc<Views>) -> Self {
        ViewsSchema { views }
    }
}

impl fmt::Debug for ViewsSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewsSchema")
            .field("tables", &self.views.table_names())
            .finish()
    }
}

#[async_trait]
impl SchemaProvider for ViewsSchema {
    fn table_names(&self) -> Vec<String> {
        self.views.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(self.views.table_provider(name))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.views.shared(name).is_some()
    }
}
