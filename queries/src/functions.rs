//! Scalar functions the engine replaces: `date_trunc` with integer arithmetic for UTC timestamps.
//!
//! Every event time in twinline is `Timestamp(ms, "UTC")`. DataFusion 55's `date_trunc` takes
//! its arithmetic fast path for `hour` and `day` only when a timestamp has no time zone; with
//! `"UTC"` it converts every value through chrono-tz and back, which made the hourly aggregate
//! over 10 M history rows spend most of its time there (1.5 s of 2.1 s, `scripts/bench_sql.py`).
//! In a zero-offset zone an hour and a day are fixed lengths, so truncation is
//! `v - v.rem_euclid(len)`: exact, and the same answer. Everything else (other zones, other
//! granularities, scalars, `Time` types) is handed to DataFusion's own function unchanged.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray};
use arrow::datatypes::{
    ArrowTimestampType, DataType, FieldRef, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::Result;
use datafusion::functions::datetime::date_trunc::DateTruncFunc;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};

/// `date_trunc` (and its alias `datetrunc`), registered over DataFusion's own.
pub(crate) fn date_trunc_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(UtcDateTrunc {
        inner: DateTruncFunc::new(),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct UtcDateTrunc {
    inner: DateTruncFunc,
}

impl ScalarUDFImpl for UtcDateTrunc {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match utc_fast_path(&args.args) {
            Some(out) => Ok(ColumnarValue::Array(out)),
            None => self.inner.invoke_with_args(args),
        }
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(input)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// Time zone names whose offset is zero at every instant.
fn is_utc(tz: &str) -> bool {
    matches!(tz, "UTC" | "utc" | "Etc/UTC" | "+00:00" | "Z" | "z")
}

/// The truncated array, or `None` where DataFusion's function must answer.
fn utc_fast_path(args: &[ColumnarValue]) -> Option<ArrayRef> {
    let [ColumnarValue::Scalar(granularity), ColumnarValue::Array(values)] = args else {
        return None;
    };
    let seconds: i64 = match granularity.try_as_str()??.to_ascii_lowercase().as_str() {
        "hour" => 3_600,
        "day" => 86_400,
        _ => return None,
    };
    let DataType::Timestamp(unit, Some(tz)) = values.data_type() else {
        return None;
    };
    if !is_utc(tz) {
        return None;
    }
    let tz = tz.clone();
    Some(match unit {
        TimeUnit::Second => truncate::<TimestampSecondType>(values, seconds, tz),
        TimeUnit::Millisecond => truncate::<TimestampMillisecondType>(values, seconds * 1_000, tz),
        TimeUnit::Microsecond => {
            truncate::<TimestampMicrosecondType>(values, seconds * 1_000_000, tz)
        }
        TimeUnit::Nanosecond => {
            truncate::<TimestampNanosecondType>(values, seconds * 1_000_000_000, tz)
        }
    })
}

fn truncate<T: ArrowTimestampType>(values: &ArrayRef, len: i64, tz: Arc<str>) -> ArrayRef {
    let values = values.as_primitive::<T>();
    let out: PrimitiveArray<T> = values.unary(|v| v - v.rem_euclid(len));
    Arc::new(out.with_timezone(tz))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMillisecondArray;
    use arrow::datatypes::Field;
    use datafusion::common::config::ConfigOptions;
    use datafusion::common::ScalarValue;

    fn invoke(udf: &dyn ScalarUDFImpl, granularity: &str, values: ArrayRef) -> ArrayRef {
        let args = vec![
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(granularity.into()))),
            ColumnarValue::Array(values.clone()),
        ];
        let arg_fields = vec![
            Arc::new(Field::new("g", DataType::Utf8, false)),
            Arc::new(Field::new("t", values.data_type().clone(), true)),
        ];
        let out = udf
            .invoke_with_args(ScalarFunctionArgs {
                args,
                arg_fields,
                number_rows: values.len(),
                return_field: Arc::new(Field::new("r", values.data_type().clone(), true)),
                config_options: Arc::new(ConfigOptions::default()),
            })
            .unwrap();
        match out {
            ColumnarValue::Array(a) => a,
            ColumnarValue::Scalar(s) => s.to_array_of_size(values.len()).unwrap(),
        }
    }

    /// Same answers as DataFusion's own function, for every zone name, granularity and unit
    /// the fast path covers, on times before and after the epoch, with nulls.
    #[test]
    fn fast_path_equals_datafusion() {
        let ours = UtcDateTrunc {
            inner: DateTruncFunc::new(),
        };
        let theirs = DateTruncFunc::new();
        // A deterministic spread of times from 1901 to 2100, plus edges.
        let mut ms: Vec<Option<i64>> = (0..2_000i64)
            .map(|i| Some(-2_208_988_800_000 + i * 3_155_695_211 + (i * i) % 86_399_999))
            .collect();
        ms.extend([
            Some(0),
            Some(-1),
            Some(1),
            None,
            Some(3_599_999),
            Some(-86_400_000),
        ]);
        for tz in ["UTC", "Etc/UTC", "+00:00", "Europe/Berlin"] {
            for granularity in ["hour", "day", "HOUR", "minute", "month", "week"] {
                let values: ArrayRef =
                    Arc::new(TimestampMillisecondArray::from(ms.clone()).with_timezone(tz));
                let a = invoke(&ours, granularity, values.clone());
                let b = invoke(&theirs, granularity, values.clone());
                assert_eq!(a.data_type(), b.data_type(), "{tz} {granularity}");
                assert_eq!(&a, &b, "{tz} {granularity}");
            }
            for unit in [
                TimeUnit::Second,
                TimeUnit::Microsecond,
                TimeUnit::Nanosecond,
            ] {
                let values: ArrayRef =
                    Arc::new(TimestampMillisecondArray::from(ms.clone()).with_timezone(tz));
                let values =
                    arrow::compute::cast(&values, &DataType::Timestamp(unit, Some(tz.into())))
                        .unwrap();
                for granularity in ["hour", "day"] {
                    let a = invoke(&ours, granularity, values.clone());
                    let b = invoke(&theirs, granularity, values.clone());
                    assert_eq!(&a, &b, "{tz} {granularity} {unit:?}");
                }
            }
        }
    }

    #[test]
    fn fast_path_only_where_exact() {
        let values: ArrayRef =
            Arc::new(TimestampMillisecondArray::from(vec![Some(5_000_000)]).with_timezone("UTC"));
        let g = |s: &str| ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.into())));
        let v = ColumnarValue::Array(values.clone());
        assert!(utc_fast_path(&[g("hour"), v.clone()]).is_some());
        assert!(utc_fast_path(&[g("month"), v.clone()]).is_none());
        let berlin: ArrayRef = Arc::new(
            TimestampMillisecondArray::from(vec![Some(5_000_000)]).with_timezone("Europe/Berlin"),
        );
        assert!(utc_fast_path(&[g("hour"), ColumnarValue::Array(berlin)]).is_none());
        let naive: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![Some(5_000_000)]));
        assert!(utc_fast_path(&[g("hour"), ColumnarValue::Array(naive)]).is_none());
    }
}
