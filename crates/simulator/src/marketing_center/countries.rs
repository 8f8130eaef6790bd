//! The `UserProfileCountry` values Marketing Center accepts: the 249 officially assigned
//! ISO 3166-1 alpha-2 codes, upper case. User-assigned codes such as `XK` and reserved codes
//! such as `UK` are rejected. The table is the crate's one copy, in `mapping::transform`.

pub(crate) use mapping::transform::iso3166::ISO_3166_ALPHA_2;

/// Whether `value` is an assigned ISO 3166-1 alpha-2 code (exact, upper case).
pub(crate) fn is_country_code(value: &str) -> bool {
    ISO_3166_ALPHA_2.binary_search(&value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_and_unique() {
        assert!(ISO_3166_ALPHA_2.windows(2).all(|w| w[0] < w[1]));
        assert!(
            ISO_3166_ALPHA_2
                .iter()
                .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
    }

    #[test]
    fn assigned_codes_only() {
        for ok in ["US", "CA", "GB", "DE", "FR", "JP", "AX", "SS", "CW", "ZW"] {
            assert!(is_country_code(ok), "{ok}");
        }
        for bad in ["us", "USA", "UK", "XK", "EU", "AN", "ZZ", "", "U"] {
            assert!(!is_country_code(bad), "{bad}");
        }
    }
}
