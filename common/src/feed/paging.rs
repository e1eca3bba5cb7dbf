//! Where each entry lives: fixed-size archive pages plus the open head page (RFC 5005).
//!
//! Positions are 1-based and gap-free. Archive page `n` (1-based) holds positions
//! `(n-1)*size+1 ..= n*size` and exists once all of them are committed; from then on it never
//! changes. The subscription document holds the positions after the last full page.

/// A feed position: the 1-based commit order of an entry. 0 means "no entry yet".
pub type Position = i64;

/// Number of entries in every archive page. Fixed for the life of a feed: changing it would
/// change pages that caches were told are immutable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(i64);

impl PageSize {
    pub const MAX: i64 = 1000;
    pub const DEFAULT: PageSize = PageSize(20);

    pub fn parse(n: i64) -> Result<PageSize, String> {
        if (1..=Self::MAX).contains(&n) {
            Ok(PageSize(n))
        } else {
            Err(format!("feed page size must be 1..={}, got {n}", Self::MAX))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// How many archive pages are full when the newest position is `head`.
    pub fn full_pages(self, head: Position) -> i64 {
        head.max(0) / self.0
    }

    /// The inclusive position range of archive page `page`.
    pub fn range(self, page: i64) -> (Position, Position) {
        ((page - 1) * self.0 + 1, page * self.0)
    }

    /// The first position shown by the subscription document when the newest is `head`.
    pub fn head_start(self, head: Position) -> Position {
        self.full_pages(head) * self.0 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_fill_in_fixed_steps() {
        let size = PageSize::parse(3).unwrap();
        assert_eq!(size.full_pages(0), 0);
        assert_eq!(size.full_pages(2), 0);
        assert_eq!(size.full_pages(3), 1);
        assert_eq!(size.full_pages(7), 2);
        assert_eq!(size.range(1), (1, 3));
        assert_eq!(size.range(3), (7, 9));
        assert_eq!(size.head_start(7), 7);
        assert_eq!(size.head_start(6), 7);
        assert_eq!(size.head_start(0), 1);
    }

    #[test]
    fn page_size_outside_bounds_is_refused() {
        assert!(PageSize::parse(0).is_err());
        assert!(PageSize::parse(1001).is_err());
        assert!(PageSize::parse(20).is_ok());
    }
}
