//! What the numbers are made of: the event contract ([`event`]: what a producer sends and why a line
//! is rejected), the table events are stored as, periods (hours, and days and months of a reporting
//! zone), dimension groups and measures (exact sums, distinct counts with sketches).

pub(crate) mod dims;
pub(crate) mod event;
pub(crate) mod event_table;
mod flat_object;
pub(crate) mod measure;
pub(crate) mod period;
mod rfc3339;

pub use dims::Dims;
pub use event::{Receipt, DEFAULT_MAX_EVENT_AGE_DAYS, STRING_FIELDS};
pub use measure::Measure;
pub use period::{day_start, floor_hour, DateOrTime, Grain, Period};
