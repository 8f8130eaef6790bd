//! The `UserProfileState` values Marketing Center accepts: the 50 US states, the District of
//! Columbia, and the 13 Canadian provinces and territories (upper-case postal
//! abbreviations). US territories (PR, GU, VI, AS, MP) and military codes (AA, AE, AP) are
//! not accepted. Pure data.

/// Every accepted abbreviation, sorted (for binary search).
pub(crate) const STATES_AND_PROVINCES: [&str; 64] = [
    "AB", "AK", "AL", "AR", "AZ", "BC", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA", "ID",
    "IL", "IN", "KS", "KY", "LA", "MA", "MB", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NB", "NC",
    "ND", "NE", "NH", "NJ", "NL", "NM", "NS", "NT", "NU", "NV", "NY", "OH", "OK", "ON", "OR", "PA",
    "PE", "QC", "RI", "SC", "SD", "SK", "TN", "TX", "UT", "VA", "VT", "WA", "WI", "WV", "WY", "YT",
];

/// Whether `value` is an accepted state or province abbreviation (exact, upper case).
pub(crate) fn is_state_or_province(value: &str) -> bool {
    STATES_AND_PROVINCES.binary_search(&value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_unique_and_complete() {
        assert!(STATES_AND_PROVINCES.windows(2).all(|w| w[0] < w[1]));
        let canada = [
            "AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT",
        ];
        assert!(canada.iter().all(|c| is_state_or_province(c)));
        let us = STATES_AND_PROVINCES
            .iter()
            .filter(|s| !canada.contains(s))
            .count();
        assert_eq!(us, 51, "50 states and DC");
    }

    #[test]
    fn only_exact_upper_case_abbreviations() {
        for ok in ["IL", "CA", "DC", "QC", "WY"] {
            assert!(is_state_or_province(ok), "{ok}");
        }
        for bad in ["il", "Il", "California", "PR", "XX", "", "ILL", "I"] {
            assert!(!is_state_or_province(bad), "{bad}");
        }
    }
}
