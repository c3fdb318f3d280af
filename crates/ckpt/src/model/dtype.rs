//! Element types, named as torch names them.

use std::fmt;
use std::str::FromStr;

/// What the bits of an element mean, in broad strokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DtypeClass {
    /// `bool`: one byte, 0 or 1.
    Bool,
    /// Unsigned integers.
    Unsigned,
    /// Signed (two's complement) integers.
    Signed,
    /// Floating point numbers (IEEE-like, including float8, float6 and float4 kinds).
    Float,
    /// Complex numbers: two floats, real part first.
    Complex,
    /// Quantized integers (`qint8`...): the scale and zero point live outside the data.
    Quantized,
    /// Opaque bit containers (`bits8`...) and sub-byte integer types torch cannot save.
    Bits,
}

macro_rules! dtypes {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $bits:literal, $class:ident; )*) => {
        /// The type of a tensor's elements.
        ///
        /// Every dtype torch has, under torch's name without `torch.` (see [`Dtype::name`]),
        /// plus the sub-byte float kinds safetensors stores that torch has no dtype for
        /// (`float4_e2m1fn`, `float6_e2m3fn`, `float6_e3m2fn`, named as in `ml_dtypes`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Dtype {
            $( $(#[$doc])* $variant, )*
        }

        impl Dtype {
            /// Every dtype, in table order.
            pub const ALL: &'static [Dtype] = &[$(Dtype::$variant),*];

            /// torch's name for the dtype, without `torch.` (`"bfloat16"`, `"float8_e4m3fn"`).
            pub const fn name(self) -> &'static str {
                match self { $( Dtype::$variant => $name, )* }
            }

            /// The size of one element in bits.
            pub const fn bits(self) -> u32 {
                match self { $( Dtype::$variant => $bits, )* }
            }

            /// What the bits mean.
            pub const fn class(self) -> DtypeClass {
                match self { $( Dtype::$variant => DtypeClass::$class, )* }
            }

            /// The dtype with this name, as [`Dtype::name`] spells it.
            pub fn from_name(name: &str) -> Option<Dtype> {
                match name { $( $name => Some(Dtype::$variant), )* _ => None }
            }
        }
    };
}

dtypes! {
    /// `torch.bool`.
    Bool = "bool", 8, Bool;
    /// `torch.uint8`.
    UInt8 = "uint8", 8, Unsigned;
    /// `torch.int8`.
    Int8 = "int8", 8, Signed;
    /// `torch.int16`.
    Int16 = "int16", 16, Signed;
    /// `torch.uint16` (torch >= 2.3).
    UInt16 = "uint16", 16, Unsigned;
    /// `torch.int32`.
    Int32 = "int32", 32, Signed;
    /// `torch.uint32` (torch >= 2.3).
    UInt32 = "uint32", 32, Unsigned;
    /// `torch.int64`.
    Int64 = "int64", 64, Signed;
    /// `torch.uint64` (torch >= 2.3).
    UInt64 = "uint64", 64, Unsigned;
    /// `torch.float16` (IEEE half).
    Float16 = "float16", 16, Float;
    /// `torch.bfloat16`.
    BFloat16 = "bfloat16", 16, Float;
    /// `torch.float32`.
    Float32 = "float32", 32, Float;
    /// `torch.float64`.
    Float64 = "float64", 64, Float;
    /// `torch.complex32` (two float16).
    Complex32 = "complex32", 32, Complex;
    /// `torch.complex64` (two float32).
    Complex64 = "complex64", 64, Complex;
    /// `torch.complex128` (two float64).
    Complex128 = "complex128", 128, Complex;
    /// `torch.bcomplex32` (two bfloat16).
    BComplex32 = "bcomplex32", 32, Complex;
    /// `torch.float8_e5m2`.
    Float8E5M2 = "float8_e5m2", 8, Float;
    /// `torch.float8_e4m3fn`.
    Float8E4M3Fn = "float8_e4m3fn", 8, Float;
    /// `torch.float8_e5m2fnuz`.
    Float8E5M2Fnuz = "float8_e5m2fnuz", 8, Float;
    /// `torch.float8_e4m3fnuz`.
    Float8E4M3Fnuz = "float8_e4m3fnuz", 8, Float;
    /// `torch.float8_e8m0fnu` (an exponent-only scale type).
    Float8E8M0Fnu = "float8_e8m0fnu", 8, Float;
    /// `torch.float4_e2m1fn_x2`: two float4 values packed in one byte; the shape counts bytes.
    Float4E2M1FnX2 = "float4_e2m1fn_x2", 8, Float;
    /// A single float4 (e2m1) value: safetensors `F4`, whose shape counts values.
    Float4E2M1Fn = "float4_e2m1fn", 4, Float;
    /// A float6 (e2m3) value: safetensors `F6_E2M3`; torch has no such dtype.
    Float6E2M3Fn = "float6_e2m3fn", 6, Float;
    /// A float6 (e3m2) value: safetensors `F6_E3M2`; torch has no such dtype.
    Float6E3M2Fn = "float6_e3m2fn", 6, Float;
    /// `torch.qint8`.
    QInt8 = "qint8", 8, Quantized;
    /// `torch.quint8`.
    QUInt8 = "quint8", 8, Quantized;
    /// `torch.qint32`.
    QInt32 = "qint32", 32, Quantized;
    /// `torch.quint4x2`: two 4-bit values per byte.
    QUInt4x2 = "quint4x2", 8, Quantized;
    /// `torch.quint2x4`: four 2-bit values per byte.
    QUInt2x4 = "quint2x4", 8, Quantized;
    /// `torch.bits8`.
    Bits8 = "bits8", 8, Bits;
    /// `torch.bits16`.
    Bits16 = "bits16", 16, Bits;
    /// `torch.bits1x8`.
    Bits1x8 = "bits1x8", 8, Bits;
    /// `torch.bits2x4`.
    Bits2x4 = "bits2x4", 8, Bits;
    /// `torch.bits4x2`.
    Bits4x2 = "bits4x2", 8, Bits;
    /// `torch.uint1` (one byte per element in memory; `torch.save` refuses it).
    UInt1 = "uint1", 8, Bits;
    /// `torch.uint2`.
    UInt2 = "uint2", 8, Bits;
    /// `torch.uint3`.
    UInt3 = "uint3", 8, Bits;
    /// `torch.uint4`.
    UInt4 = "uint4", 8, Bits;
    /// `torch.uint5`.
    UInt5 = "uint5", 8, Bits;
    /// `torch.uint6`.
    UInt6 = "uint6", 8, Bits;
    /// `torch.uint7`.
    UInt7 = "uint7", 8, Bits;
    /// `torch.int1` (one byte per element in memory; `torch.save` refuses it).
    Int1 = "int1", 8, Bits;
    /// `torch.int2`.
    Int2 = "int2", 8, Bits;
    /// `torch.int3`.
    Int3 = "int3", 8, Bits;
    /// `torch.int4`.
    Int4 = "int4", 8, Bits;
    /// `torch.int5`.
    Int5 = "int5", 8, Bits;
    /// `torch.int6`.
    Int6 = "int6", 8, Bits;
    /// `torch.int7`.
    Int7 = "int7", 8, Bits;
}

impl Dtype {
    /// The size of one element in whole bytes, or `None` for sub-byte dtypes
    /// (`float4_e2m1fn`, `float6_*`), which only exist packed.
    pub const fn byte_size(self) -> Option<usize> {
        match self.bits() {
            8 => Some(1),
            16 => Some(2),
            32 => Some(4),
            64 => Some(8),
            128 => Some(16),
            _ => None,
        }
    }

    /// The size of the unit that a byte-order swap reverses: the element size, or half of
    /// it for complex numbers (each part is swapped on its own). 1 means nothing to swap.
    pub const fn swap_size(self) -> usize {
        match (self.class(), self.byte_size()) {
            (DtypeClass::Complex, Some(size)) => size / 2,
            (_, Some(size)) => size,
            (_, None) => 1,
        }
    }

    /// How many values one element packs: 2 for `float4_e2m1fn_x2` and `quint4x2`, 4 for
    /// `quint2x4`, else 1. A tensor's parameter count is its element count times this.
    pub const fn values_per_element(self) -> u64 {
        match self {
            Dtype::Float4E2M1FnX2 | Dtype::QUInt4x2 => 2,
            Dtype::QUInt2x4 => 4,
            _ => 1,
        }
    }

    /// Whether the elements are floating point numbers (real, not complex).
    pub const fn is_float(self) -> bool {
        matches!(self.class(), DtypeClass::Float)
    }
}

/// A dtype serializes as its [`Dtype::name`] (torch's, without `torch.`).
impl serde::Serialize for Dtype {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing a [`Dtype`] from a name it does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownDtype(pub String);

impl fmt::Display for UnknownDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown dtype `{}`", self.0)
    }
}

impl std::error::Error for UnknownDtype {}

impl FromStr for Dtype {
    type Err = UnknownDtype;

    /// Parses torch's name, with or without the `torch.` prefix, and torch's aliases
    /// (`float`, `half`, `double`, `long`, `int`, `short`, `cfloat`, `cdouble`, `chalf`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = s.strip_prefix("torch.").unwrap_or(s);
        let canonical = match bare {
            "float" => "float32",
            "half" => "float16",
            "double" => "float64",
            "long" => "int64",
            "int" => "int32",
            "short" => "int16",
            "cfloat" => "complex64",
            "cdouble" => "complex128",
            "chalf" => "complex32",
            other => other,
        };
        Dtype::from_name(canonical).ok_or_else(|| UnknownDtype(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &dtype in Dtype::ALL {
            assert_eq!(Dtype::from_name(dtype.name()), Some(dtype));
            assert_eq!(dtype.name().parse::<Dtype>(), Ok(dtype));
            assert_eq!(format!("torch.{dtype}").parse::<Dtype>(), Ok(dtype));
        }
        assert_eq!("half".parse::<Dtype>(), Ok(Dtype::Float16));
        assert!("float128".parse::<Dtype>().is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(Dtype::BFloat16.byte_size(), Some(2));
        assert_eq!(Dtype::Complex128.byte_size(), Some(16));
        assert_eq!(Dtype::Complex128.swap_size(), 8);
        assert_eq!(Dtype::Float4E2M1Fn.byte_size(), None);
        assert_eq!(Dtype::Float4E2M1FnX2.byte_size(), Some(1));
        assert_eq!(Dtype::Bool.swap_size(), 1);
        assert!(Dtype::Float8E4M3Fn.is_float());
        assert!(!Dtype::Complex64.is_float());
    }
}
