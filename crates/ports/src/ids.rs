use uuid::Uuid;

/// Produces new entity ids, injected so tests get predictable ids and production gets UUIDv7
/// (time-ordered, which keeps B-tree inserts at the right edge of the index).
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait IdGenerator: Send + Sync {
    /// A fresh, never-before-returned id. Never fails.
    fn new_id(&self) -> Uuid;
}
