//! The V2 datatypes and their wire sizes.

use std::fmt;
use std::str::FromStr;

/// A KServe V2 tensor datatype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    Bf16,
    F32,
    F64,
    /// Variable-length byte strings (Triton `TYPE_STRING`).
    Bytes,
}

impl DataType {
    pub const ALL: [DataType; 14] = [
        DataType::Bool,
        DataType::U8,
        DataType::U16,
        DataType::U32,
        DataType::U64,
        DataType::I8,
        DataType::I16,
        DataType::I32,
        DataType::I64,
        DataType::F16,
        DataType::Bf16,
        DataType::F32,
        DataType::F64,
        DataType::Bytes,
    ];

    /// Bytes per element on the wire, `None` for BYTES (variable length).
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DataType::Bool | DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 | DataType::F16 | DataType::Bf16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::U64 | DataType::I64 | DataType::F64 => 8,
            DataType::Bytes => return None,
        })
    }

    /// The V2 name (`FP32`).
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::U16 => "UINT16",
            DataType::U32 => "UINT32",
            DataType::U64 => "UINT64",
            DataType::I8 => "INT8",
            DataType::I16 => "INT16",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F16 => "FP16",
            DataType::Bf16 => "BF16",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// The Triton model-configuration name (`TYPE_FP32`).
    pub fn config_name(self) -> &'static str {
        match self {
            DataType::Bool => "TYPE_BOOL",
            DataType::U8 => "TYPE_UINT8",
            DataType::U16 => "TYPE_UINT16",
            DataType::U32 => "TYPE_UINT32",
            DataType::U64 => "TYPE_UINT64",
            DataType::I8 => "TYPE_INT8",
            DataType::I16 => "TYPE_INT16",
            DataType::I32 => "TYPE_INT32",
            DataType::I64 => "TYPE_INT64",
            DataType::F16 => "TYPE_FP16",
            DataType::Bf16 => "TYPE_BF16",
            DataType::F32 => "TYPE_FP32",
            DataType::F64 => "TYPE_FP64",
            DataType::Bytes => "TYPE_STRING",
        }
    }

    /// Parses a Triton model-configuration name (`TYPE_FP32`).
    pub fn from_config_name(s: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.config_name() == s)
    }

    /// FP16 and BF16 have no JSON representation in the protocol.
    pub fn json_capable(self) -> bool {
        !matches!(self, DataType::F16 | DataType::Bf16)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        DataType::ALL.into_iter().find(|d| d.as_str() == s).ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for dt in DataType::ALL {
            assert_eq!(dt.as_str().parse::<DataType>(), Ok(dt));
            assert_eq!(DataType::from_config_name(dt.config_name()), Some(dt));
        }
        assert!("FLOAT".parse::<DataType>().is_err());
        assert_eq!(DataType::from_config_name("TYPE_FLOAT"), None);
    }

    #[test]
    fn sizes_follow_the_protocol() {
        assert_eq!(DataType::Bool.size(), Some(1));
        assert_eq!(DataType::Bf16.size(), Some(2));
        assert_eq!(DataType::F64.size(), Some(8));
        assert_eq!(DataType::Bytes.size(), None);
    }
}
