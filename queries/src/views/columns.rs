//! Arrow column builders for the view tables: a macro that declares a table's columns once
//! (name, builder, type, nullability) and derives its schema, builders and finishers from it.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrowPrimitiveType, BooleanBuilder, PrimitiveBuilder, StringBuilder,
};
use arrow::datatypes::{DataType, TimeUnit};

/// Arrow type of every event-time column: milliseconds, explicitly UTC so SQL clients render
/// instants, not local wall times.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC")))
}

/// A builder that can be created for `rows` rows of a given Arrow type.
pub trait NewBuilder: ArrayBuilder {
    fn new_with(rows: usize, data_type: &DataType) -> Self;
}

impl<T: ArrowPrimitiveType> NewBuilder for PrimitiveBuilder<T> {
    fn new_with(rows: usize, data_type: &DataType) -> Self {
        // with_data_type carries the timezone of timestamp columns; for plain numbers it is the
        // type's own default and changes nothing.
        PrimitiveBuilder::<T>::with_capacity(rows).with_data_type(data_type.clone())
    }
}

impl NewBuilder for StringBuilder {
    fn new_with(rows: usize, _data_type: &DataType) -> Self {
        // Most strings here are short ids; 16 bytes a row avoids most regrowth of the values buffer.
        StringBuilder::with_capacity(rows, rows.saturating_mul(16))
    }
}

impl NewBuilder for BooleanBuilder {
    fn new_with(rows: usize, _data_type: &DataType) -> Self {
        BooleanBuilder::with_capacity(rows)
    }
}

/// A table's set of column builders (implemented by [`columns!`]).
pub trait ColumnSet: Send + 'static {
    fn schema() -> arrow::datatypes::SchemaRef;
    fn with_capacity(rows: usize) -> Self;
    /// Moves the open rows out as arrays (the builders are empty afterwards).
    fn finish_all(&mut self) -> Vec<arrow::array::ArrayRef>;
    /// Copies the open rows as arrays (the builders keep them).
    fn finish_cloned_all(&self) -> Vec<arrow::array::ArrayRef>;
    fn rows(&self) -> usize;
}

/// Declares a struct of column builders. Generates `schema()`, `with_capacity(rows)`,
/// `finish_all()` (moves the rows out), `finish_cloned_all()` (copies them, for snapshots of
/// the open batch) and `rows()`.
macro_rules! columns {
    ($vis:vis struct $name:ident { $first:ident : $fbuilder:ty => $fdt:expr, $fnull:expr $(, $field:ident : $builder:ty => $dt:expr, $nullable:expr)* $(,)? }) => {
        $vis struct $name {
            pub(crate) $first: $fbuilder,
            $(pub(crate) $field: $builder,)*
        }

        impl $crate::views::columns::ColumnSet for $name {
            fn schema() -> ::arrow::datatypes::SchemaRef {
                ::std::sync::Arc::new(::arrow::datatypes::Schema::new(vec![
                    ::arrow::datatypes::Field::new(stringify!($first), $fdt, $fnull),
                    $(::arrow::datatypes::Field::new(stringify!($field), $dt, $nullable),)*
                ]))
            }

            fn with_capacity(rows: usize) -> Self {
                use $crate::views::columns::NewBuilder;
                Self {
                    $first: <$fbuilder>::new_with(rows, &$fdt),
                    $($field: <$builder>::new_with(rows, &$dt),)*
                }
            }

            fn finish_all(&mut self) -> Vec<::arrow::array::ArrayRef> {
                // Through the trait: the builders' inherent `finish` returns typed arrays.
                vec![
                    ::arrow::array::ArrayBuilder::finish(&mut self.$first),
                    $(::arrow::array::ArrayBuilder::finish(&mut self.$field),)*
                ]
            }

            fn finish_cloned_all(&self) -> Vec<::arrow::array::ArrayRef> {
                vec![
                    ::arrow::array::ArrayBuilder::finish_cloned(&self.$first),
                    $(::arrow::array::ArrayBuilder::finish_cloned(&self.$field),)*
                ]
            }

            fn rows(&self) -> usize {
                ::arrow::array::ArrayBuilder::len(&self.$first)
            }
        }
    };
}

pub(crate) use columns;
