//! Security Parameter Indexes and their allocation (RFC 4303 §2.1, TS 33.203 §7.1).

use std::collections::HashSet;
use std::fmt;
use std::ops::RangeInclusive;

use crate::Error;

/// A Security Parameter Index: with the destination address it names one inbound SA.
///
/// TS 33.203 §7.1: each side chooses the SPIs of its own inbound SAs (`spi-c`, `spi-s`), and
/// they must differ from the SPIs of every SA it already has. Printed in decimal, as in the
/// Security-* headers; use `{:#x}` for XFRM and Wireshark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spi(pub u32);

impl fmt::Display for Spi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::LowerHex for Spi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// The smallest SPI a sender may use: 1..=255 are reserved by IANA and 0 is never sent
/// (RFC 4303 §2.1).
pub const MIN_SPI: u32 = 256;

/// Hands out unique SPIs from a configured range, next-fit: a released SPI is not reused until
/// the cursor comes round again, so a late packet for a deleted SA cannot hit a new one.
///
/// Pure: no randomness, no clock. The P-CSCF holds one (inside [`crate::SaTable`]).
#[derive(Debug, Clone)]
pub struct SpiAllocator {
    min: u32,
    max: u32,
    next: u32,
    used: HashSet<u32>,
}

impl SpiAllocator {
    /// An allocator over `range`, which must lie within `256..=u32::MAX` and not be empty.
    pub fn new(range: RangeInclusive<u32>) -> Result<Self, Error> {
        let (min, max) = (*range.start(), *range.end());
        if min < MIN_SPI || min > max {
            return Err(Error::BadSpiRange { min, max });
        }
        Ok(Self {
            min,
            max,
            next: min,
            used: HashSet::new(),
        })
    }

    /// How many SPIs the range holds.
    pub fn capacity(&self) -> u64 {
        u64::from(self.max - self.min) + 1
    }

    /// How many SPIs are allocated.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    /// True when `spi` is allocated.
    pub fn is_allocated(&self, spi: Spi) -> bool {
        self.used.contains(&spi.0)
    }

    /// The next free SPI, or [`Error::SpisExhausted`].
    pub fn allocate(&mut self) -> Result<Spi, Error> {
        if self.used.len() as u64 >= self.capacity() {
            return Err(Error::SpisExhausted {
                in_use: self.used.len(),
            });
        }
        loop {
            let candidate = self.next;
            self.next = if candidate == self.max {
                self.min
            } else {
                candidate + 1
            };
            if self.used.insert(candidate) {
                return Ok(Spi(candidate));
            }
        }
    }

    /// Two distinct SPIs, for `spi-c` and `spi-s`. On failure nothing stays allocated.
    pub fn allocate_pair(&mut self) -> Result<(Spi, Spi), Error> {
        let c = self.allocate()?;
        match self.allocate() {
            Ok(s) => Ok((c, s)),
            Err(e) => {
                self.release(c);
                Err(e)
            }
        }
    }

    /// Marks `spi` allocated (an SA set restored after a restart), or
    /// [`Error::SpiUnavailable`] when it is outside the range or in use.
    pub fn reserve(&mut self, spi: Spi) -> Result<(), Error> {
        if spi.0 < self.min || spi.0 > self.max || !self.used.insert(spi.0) {
            return Err(Error::SpiUnavailable { spi });
        }
        Ok(())
    }

    /// Returns `spi` to the pool; false if it was not allocated.
    pub fn release(&mut self, spi: Spi) -> bool {
        self.used.remove(&spi.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_rejects_reserved_and_empty_ranges() {
        assert!(matches!(
            SpiAllocator::new(0..=1000),
            Err(Error::BadSpiRange { .. })
        ));
        assert!(matches!(
            SpiAllocator::new(255..=1000),
            Err(Error::BadSpiRange { .. })
        ));
        assert!(matches!(
            SpiAllocator::new(RangeInclusive::new(2000, 1000)),
            Err(Error::BadSpiRange { .. })
        ));
        assert!(SpiAllocator::new(256..=256).is_ok());
        assert_eq!(
            SpiAllocator::new(256..=u32::MAX).unwrap().capacity(),
            (1u64 << 32) - 256
        );
    }

    #[test]
    fn allocated_spis_are_unique_within_range_until_exhausted() {
        let mut a = SpiAllocator::new(1000..=1009).unwrap();
        let mut seen = HashSet::new();
        for _ in 0..10 {
            let s = a.allocate().unwrap();
            assert!((1000..=1009).contains(&s.0));
            assert!(seen.insert(s));
        }
        assert!(matches!(
            a.allocate(),
            Err(Error::SpisExhausted { in_use: 10 })
        ));
        assert!(a.release(Spi(1004)));
        assert!(!a.release(Spi(1004)));
        assert_eq!(a.allocate().unwrap(), Spi(1004));
    }

    #[test]
    fn released_spi_is_not_reused_before_the_cursor_wraps() {
        let mut a = SpiAllocator::new(1000..=1003).unwrap();
        let first = a.allocate().unwrap();
        a.release(first);
        let next: Vec<_> = (0..3).map(|_| a.allocate().unwrap().0).collect();
        assert_eq!(next, [1001, 1002, 1003]);
        assert_eq!(a.allocate().unwrap(), first);
    }

    #[test]
    fn failed_pair_allocation_leaves_nothing_allocated() {
        let mut a = SpiAllocator::new(1000..=1002).unwrap();
        a.allocate_pair().unwrap();
        assert!(a.allocate_pair().is_err());
        assert_eq!(a.in_use(), 2);
    }

    #[test]
    fn spi_prints_decimal_and_hex() {
        assert_eq!(
            format!("{} {:#010x}", Spi(4096), Spi(4096)),
            "4096 0x00001000"
        );
    }
}
