use tenantry_ports::IdGenerator;
use uuid::Uuid;

/// UUIDv7 ids: time-ordered, so new rows land at the right edge of primary-key indexes and ids
/// sort by creation time (which cursor pagination relies on).
#[derive(Debug, Default, Clone, Copy)]
pub struct UuidV7Generator;

impl IdGenerator for UuidV7Generator {
    fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_and_increase() {
        let generator = UuidV7Generator;
        let ids: Vec<Uuid> = (0..1000).map(|_| generator.new_id()).collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
