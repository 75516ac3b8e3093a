//! Wire code points as open newtypes: command codes, application ids, vendor ids, result codes.
//!
//! Every newtype wraps the raw number, so values this crate has never heard of decode, compare and
//! re-encode unchanged; the associated consts only name the well-known ones.

open_code!(
    /// A Diameter command code (RFC 6733 §3, 24 bits on the wire).
    CommandCode(u32) {
        /// Capabilities-Exchange-Request/Answer (RFC 6733 §5.3).
        CAPABILITIES_EXCHANGE = 257;
        /// Re-Auth-Request/Answer (RFC 6733 §8.3).
        RE_AUTH = 258;
        /// Accounting-Request/Answer (RFC 6733 §9.7).
        ACCOUNTING = 271;
        /// Abort-Session-Request/Answer (RFC 6733 §8.5).
        ABORT_SESSION = 274;
        /// Session-Termination-Request/Answer (RFC 6733 §8.4).
        SESSION_TERMINATION = 275;
        /// Device-Watchdog-Request/Answer (RFC 6733 §5.5).
        DEVICE_WATCHDOG = 280;
        /// Disconnect-Peer-Request/Answer (RFC 6733 §5.4).
        DISCONNECT_PEER = 282;
        /// Cx User-Authorization-Request/Answer, UAR/UAA (TS 29.229 §6.1.1).
        USER_AUTHORIZATION = 300;
        /// Cx Server-Assignment-Request/Answer, SAR/SAA (TS 29.229 §6.1.3).
        SERVER_ASSIGNMENT = 301;
        /// Cx Location-Info-Request/Answer, LIR/LIA (TS 29.229 §6.1.5).
        LOCATION_INFO = 302;
        /// Cx Multimedia-Auth-Request/Answer, MAR/MAA (TS 29.229 §6.1.7).
        MULTIMEDIA_AUTH = 303;
        /// Cx Registration-Termination-Request/Answer, RTR/RTA (TS 29.229 §6.1.9).
        REGISTRATION_TERMINATION = 304;
        /// Cx Push-Profile-Request/Answer, PPR/PPA (TS 29.229 §6.1.11).
        PUSH_PROFILE = 305;
    }
);

open_code!(
    /// A Diameter application id (RFC 6733 §2.4).
    ApplicationId(u32) {
        /// Diameter common messages: CER, DWR, DPR (RFC 6733 §2.4).
        COMMON = 0;
        /// NASREQ (RFC 7155).
        NASREQ = 1;
        /// Diameter base accounting (RFC 6733 §2.4).
        BASE_ACCOUNTING = 3;
        /// 3GPP Cx/Dx (TS 29.229 §5.1).
        CX = 16_777_216;
        /// Relay: advertised by relay agents (RFC 6733 §2.4).
        RELAY = 0xffff_ffff;
    }
);

open_code!(
    /// An SMI network management private enterprise code, used as Vendor-Id (RFC 6733 §5.3.3).
    VendorId(u32) {
        /// IETF AVPs carry no vendor id; 0 stands for them in lookups.
        IETF = 0;
        /// 3GPP (TS 29.229 §6.3: every Cx AVP has vendor 10415).
        TGPP = 10_415;
        /// ETSI (Line-Identifier, ETSI TS 129 229 / ES 283 034).
        ETSI = 13_019;
    }
);

open_code!(
    /// A Result-Code value (RFC 6733 §7.1). The thousands digit is the class.
    ResultCode(u32) {
        /// Authentication needs another round (RFC 6733 §7.1.1).
        DIAMETER_MULTI_ROUND_AUTH = 1001;
        /// The request was completed (RFC 6733 §7.1.2).
        DIAMETER_SUCCESS = 2001;
        /// Completed, more processing needed by the application (RFC 6733 §7.1.2).
        DIAMETER_LIMITED_SUCCESS = 2002;
        /// The command code is not supported (RFC 6733 §7.1.3).
        DIAMETER_COMMAND_UNSUPPORTED = 3001;
        /// The message could not be delivered (RFC 6733 §7.1.3).
        DIAMETER_UNABLE_TO_DELIVER = 3002;
        /// The destination realm is not served (RFC 6733 §7.1.3).
        DIAMETER_REALM_NOT_SERVED = 3003;
        /// The node is too busy (RFC 6733 §7.1.3).
        DIAMETER_TOO_BUSY = 3004;
        /// A routing loop was detected (RFC 6733 §7.1.3).
        DIAMETER_LOOP_DETECTED = 3005;
        /// Redirect agent answer (RFC 6733 §7.1.3).
        DIAMETER_REDIRECT_INDICATION = 3006;
        /// The application id is not supported (RFC 6733 §7.1.3).
        DIAMETER_APPLICATION_UNSUPPORTED = 3007;
        /// Header flag bits are invalid for the command (RFC 6733 §7.1.3).
        DIAMETER_INVALID_HDR_BITS = 3008;
        /// AVP flag bits are invalid for the AVP (RFC 6733 §7.1.3).
        DIAMETER_INVALID_AVP_BITS = 3009;
        /// A CER came from an unknown peer (RFC 6733 §7.1.3).
        DIAMETER_UNKNOWN_PEER = 3010;
        /// Authentication failed (RFC 6733 §7.1.4).
        DIAMETER_AUTHENTICATION_REJECTED = 4001;
        /// No space to store the request (RFC 6733 §7.1.4).
        DIAMETER_OUT_OF_SPACE = 4002;
        /// The peer lost the connection election (RFC 6733 §7.1.4).
        ELECTION_LOST = 4003;
        /// An AVP with the M bit is not supported (RFC 6733 §7.1.5).
        DIAMETER_AVP_UNSUPPORTED = 5001;
        /// Unknown Session-Id (RFC 6733 §7.1.5).
        DIAMETER_UNKNOWN_SESSION_ID = 5002;
        /// Authorization rejected (RFC 6733 §7.1.5).
        DIAMETER_AUTHORIZATION_REJECTED = 5003;
        /// An AVP has an invalid value (RFC 6733 §7.1.5).
        DIAMETER_INVALID_AVP_VALUE = 5004;
        /// A required AVP is missing (RFC 6733 §7.1.5).
        DIAMETER_MISSING_AVP = 5005;
        /// Resources exceeded (RFC 6733 §7.1.5).
        DIAMETER_RESOURCES_EXCEEDED = 5006;
        /// Contradicting AVPs (RFC 6733 §7.1.5).
        DIAMETER_CONTRADICTING_AVPS = 5007;
        /// An AVP is not allowed in this message (RFC 6733 §7.1.5).
        DIAMETER_AVP_NOT_ALLOWED = 5008;
        /// An AVP occurs more often than allowed (RFC 6733 §7.1.5).
        DIAMETER_AVP_OCCURS_TOO_MANY_TIMES = 5009;
        /// No application in common after capability exchange (RFC 6733 §7.1.5).
        DIAMETER_NO_COMMON_APPLICATION = 5010;
        /// The Diameter version is not supported (RFC 6733 §7.1.5).
        DIAMETER_UNSUPPORTED_VERSION = 5011;
        /// The request cannot be complied with (RFC 6733 §7.1.5).
        DIAMETER_UNABLE_TO_COMPLY = 5012;
        /// A reserved header bit was set (RFC 6733 §7.1.5).
        DIAMETER_INVALID_BIT_IN_HEADER = 5013;
        /// An AVP has an invalid length (RFC 6733 §7.1.5).
        DIAMETER_INVALID_AVP_LENGTH = 5014;
        /// The message has an invalid length (RFC 6733 §7.1.5).
        DIAMETER_INVALID_MESSAGE_LENGTH = 5015;
        /// An invalid combination of AVP bits (RFC 6733 §7.1.5).
        DIAMETER_INVALID_AVP_BIT_COMBO = 5016;
        /// No common security mechanism (RFC 6733 §7.1.5).
        DIAMETER_NO_COMMON_SECURITY = 5017;
    }
);

impl ResultCode {
    /// 1xxx: informational.
    pub fn is_informational(self) -> bool {
        (1000..2000).contains(&self.0)
    }

    /// 2xxx: success.
    pub fn is_success(self) -> bool {
        (2000..3000).contains(&self.0)
    }

    /// 3xxx: protocol errors, answered with the E bit set (RFC 6733 §7.1.3).
    pub fn is_protocol_error(self) -> bool {
        (3000..4000).contains(&self.0)
    }

    /// 4xxx: transient failures.
    pub fn is_transient_failure(self) -> bool {
        (4000..5000).contains(&self.0)
    }

    /// 5xxx: permanent failures.
    pub fn is_permanent_failure(self) -> bool {
        (5000..6000).contains(&self.0)
    }
}

open_code!(
    /// An Experimental-Result-Code value. The Cx codes are those of TS 29.229 §6.2, always
    /// sent with Vendor-Id 10415 inside Experimental-Result.
    ExperimentalResultCode(u32) {
        /// The user is not registered yet; the HSS may assign a server (TS 29.229 §6.2.1.1).
        DIAMETER_FIRST_REGISTRATION = 2001;
        /// The user is already registered (TS 29.229 §6.2.1.2).
        DIAMETER_SUBSEQUENT_REGISTRATION = 2002;
        /// Unregistered user with services for the unregistered state (TS 29.229 §6.2.1.3).
        DIAMETER_UNREGISTERED_SERVICE = 2003;
        /// De-registration done; the S-CSCF name is not stored (TS 29.229 §6.2.1.4).
        DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED = 2004;
        /// Server selection needed: TS 29.229 before V7.2.0, which deprecated it (TS 29.230 §8.1
        /// still lists the value). Never sent by this crate; named for decoding old peers.
        DIAMETER_SERVER_SELECTION = 2005;
        /// The user is unknown (TS 29.229 §6.2.2.1).
        DIAMETER_ERROR_USER_UNKNOWN = 5001;
        /// Public and private identity do not belong together (TS 29.229 §6.2.2.2).
        DIAMETER_ERROR_IDENTITIES_DONT_MATCH = 5002;
        /// The public identity has never been registered (TS 29.229 §6.2.2.3).
        DIAMETER_ERROR_IDENTITY_NOT_REGISTERED = 5003;
        /// Roaming to the visited network is not allowed (TS 29.229 §6.2.2.4).
        DIAMETER_ERROR_ROAMING_NOT_ALLOWED = 5004;
        /// Another server is assigned and may not be overwritten (TS 29.229 §6.2.2.5).
        DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED = 5005;
        /// The authentication scheme is not supported (TS 29.229 §6.2.2.6).
        DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED = 5006;
        /// The Server-Assignment-Type is not allowed in this state (TS 29.229 §6.2.2.7).
        DIAMETER_ERROR_IN_ASSIGNMENT_TYPE = 5007;
        /// Too much data pushed to the receiver (TS 29.229 §6.2.2.8).
        DIAMETER_ERROR_TOO_MUCH_DATA = 5008;
        /// The S-CSCF does not support the user data (TS 29.229 §6.2.2.9).
        DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA = 5009;
        /// Missing user id: not defined by TS 29.229 nor listed in TS 29.230 §8.1; the
        /// FOKUS/Kamailio IMS HSS and Wireshark use it. Never sent by this crate; named for
        /// decoding those peers.
        DIAMETER_MISSING_USER_ID = 5010;
        /// A requested feature is not supported (TS 29.229 §6.2.2.10).
        DIAMETER_ERROR_FEATURE_UNSUPPORTED = 5011;
        /// The HSS supports the P-CSCF restoration mechanism but none of the user's serving
        /// nodes does (TS 29.229 §6.2.2.11, TS 23.380 §5.4; listed in TS 29.230 §8.1).
        DIAMETER_ERROR_SERVING_NODE_FEATURE_UNSUPPORTED = 5012;
    }
);

impl ExperimentalResultCode {
    /// 2xxx: success.
    pub fn is_success(self) -> bool {
        (2000..3000).contains(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_code_points_keep_their_value_and_have_no_name() {
        let c = CommandCode(12345);
        assert_eq!(c.name(), None);
        assert_eq!(format!("{c:?}"), "CommandCode(12345)");
        assert_eq!(CommandCode::MULTIMEDIA_AUTH.name(), Some("MULTIMEDIA_AUTH"));
        assert_eq!(ApplicationId::CX.0, 16_777_216);
    }

    #[test]
    fn cx_experimental_result_codes_have_their_ts_29_229_values() {
        // TS 29.229 §6.2.1 (success) and §6.2.2 (permanent failures), as TS 29.230 §8.1 lists
        // them for vendor 10415.
        let spec = [
            (ExperimentalResultCode::DIAMETER_FIRST_REGISTRATION, 2001),
            (
                ExperimentalResultCode::DIAMETER_SUBSEQUENT_REGISTRATION,
                2002,
            ),
            (ExperimentalResultCode::DIAMETER_UNREGISTERED_SERVICE, 2003),
            (
                ExperimentalResultCode::DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED,
                2004,
            ),
            (ExperimentalResultCode::DIAMETER_ERROR_USER_UNKNOWN, 5001),
            (
                ExperimentalResultCode::DIAMETER_ERROR_IDENTITIES_DONT_MATCH,
                5002,
            ),
            (
                ExperimentalResultCode::DIAMETER_ERROR_IDENTITY_NOT_REGISTERED,
                5003,
            ),
            (
                ExperimentalResultCode::DIAMETER_ERROR_ROAMING_NOT_ALLOWED,
                5004,
            ),
            (
                ExperimentalResultCode::DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED,
                5005,
            ),
            (
                ExperimentalResultCode::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED,
                5006,
            ),
            (
                ExperimentalResultCode::DIAMETER_ERROR_IN_ASSIGNMENT_TYPE,
                5007,
            ),
            (ExperimentalResultCode::DIAMETER_ERROR_TOO_MUCH_DATA, 5008),
            (
                ExperimentalResultCode::DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA,
                5009,
            ),
            (
                ExperimentalResultCode::DIAMETER_ERROR_FEATURE_UNSUPPORTED,
                5011,
            ),
            (
                ExperimentalResultCode::DIAMETER_ERROR_SERVING_NODE_FEATURE_UNSUPPORTED,
                5012,
            ),
        ];
        for (code, value) in spec {
            assert_eq!(code.0, value, "{:?}", code.name());
        }
    }

    #[test]
    fn result_code_classes_follow_the_thousands_digit() {
        assert!(ResultCode::DIAMETER_SUCCESS.is_success());
        assert!(ResultCode::DIAMETER_INVALID_HDR_BITS.is_protocol_error());
        assert!(ResultCode::ELECTION_LOST.is_transient_failure());
        assert!(ResultCode::DIAMETER_MISSING_AVP.is_permanent_failure());
        assert!(!ResultCode(6000).is_permanent_failure());
    }
}
