//! A fixed-capacity string built in constants, so a compile-time check can fail with the same
//! message as its runtime twin (`panic!("{}", text.as_str())` is allowed in const evaluation).

/// Capacity of a [`ConstText`] in bytes; longer text is cut at a character boundary.
pub const CAPACITY: usize = 512;

/// Text assembled by `const fn`s.
#[derive(Clone, Copy, Debug)]
pub struct ConstText {
    bytes: [u8; CAPACITY],
    len: usize,
}

impl ConstText {
    /// Empty text.
    pub const fn new() -> Self {
        Self { bytes: [0; CAPACITY], len: 0 }
    }

    /// Append `s` (as much as fits, whole characters only).
    pub const fn push(mut self, s: &str) -> Self {
        let b = s.as_bytes();
        if self.len + b.len() > CAPACITY {
            return self;
        }
        let mut i = 0;
        while i < b.len() {
            self.bytes[self.len] = b[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    /// Append `n` in decimal, preceded by a space.
    pub const fn push_usize(self, n: usize) -> Self {
        let mut digits = [0u8; 20];
        let mut count = 0;
        let mut rest = n;
        loop {
            digits[count] = b'0' + (rest % 10) as u8;
            count += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        let mut out = self.push(" ");
        while count > 0 && out.len < CAPACITY {
            count -= 1;
            out.bytes[out.len] = digits[count];
            out.len += 1;
        }
        out
    }

    /// Drop the last `n` bytes (ASCII only is ever dropped by callers).
    pub const fn pop(mut self, n: usize) -> Self {
        self.len = self.len.saturating_sub(n);
        self
    }

    /// The text.
    pub const fn as_str(&self) -> &str {
        match core::str::from_utf8(self.bytes.split_at(self.len).0) {
            Ok(s) => s,
            Err(_) => "(message not valid UTF-8)",
        }
    }
}

impl Default for ConstText {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_text_with_numbers() {
        let t = ConstText::new().push("step").push_usize(12).push(" `a`: x").pop(3);
        assert_eq!(t.as_str(), "step 12 `a`");
        assert_eq!(ConstText::new().push_usize(0).as_str(), " 0");
        let long = "x".repeat(CAPACITY + 1);
        assert_eq!(ConstText::new().push("ok").push(&long).as_str(), "ok");
    }
}
