package notifier

import (
	"math"
	"math/big"
	"sync"
)

// Zaqar computes its geometric and exponential back-off values with
// Python's math.log10 and math.pow, which are the C library's; the values
// are truncated to whole seconds, so a result one ulp off can change a
// pause by a second. Go's math.Log10 and math.Pow are less accurate than
// glibc's (checked against Zaqar in policy_test.go), so Herald computes
// them as glibc does: log10 with fdlibm's algorithm (glibc's e_log10.c)
// over a correctly rounded natural logarithm, pow correctly rounded.

// libmPrec is the working precision of the correctly rounded functions.
const libmPrec = 256

func bigf(x float64) *big.Float { return new(big.Float).SetPrec(libmPrec).SetFloat64(x) }

var libmConst struct {
	once sync.Once
	ln2  *big.Float
}

// bigLn2 returns ln 2 to libmPrec bits.
func bigLn2() *big.Float {
	libmConst.once.Do(func() { libmConst.ln2 = lnNear1(bigf(2)) })
	return libmConst.ln2
}

// lnNear1 is ln m = 2 atanh((m-1)/(m+1)), quick for m near 1.
func lnNear1(m *big.Float) *big.Float {
	one := bigf(1)
	z := bigf(0).Quo(bigf(0).Sub(m, one), bigf(0).Add(m, one))
	z2 := bigf(0).Mul(z, z)
	eps := new(big.Float).SetMantExp(one, -libmPrec-8)
	sum, term := bigf(0), bigf(0).Set(z)
	for k := 1.0; ; k += 2 {
		t := bigf(0).Quo(term, bigf(k))
		sum.Add(sum, t)
		if t.Sign() == 0 || bigf(0).Abs(t).Cmp(eps) < 0 {
			break
		}
		term.Mul(term, z2)
	}
	return sum.Mul(sum, bigf(2))
}

// bigLn is ln x for x > 0.
func bigLn(x *big.Float) *big.Float {
	m := bigf(0)
	e := x.MantExp(m) // x = m × 2^e, 0.5 <= m < 1
	if m.Cmp(bigf(0.75)) < 0 {
		m.Mul(m, bigf(2))
		e--
	}
	r := lnNear1(m)
	return r.Add(r, bigf(0).Mul(bigLn2(), bigf(float64(e))))
}

// bigExp is e^x for moderate x.
func bigExp(x *big.Float) *big.Float {
	const halvings = 24
	r := new(big.Float).SetPrec(libmPrec).SetMantExp(x, -halvings)
	one := bigf(1)
	eps := new(big.Float).SetMantExp(one, -libmPrec-8)
	sum, term := bigf(1), bigf(1)
	for k := 1.0; ; k++ {
		term.Mul(term, r)
		term.Quo(term, bigf(k))
		sum.Add(sum, term)
		if term.Sign() == 0 || bigf(0).Abs(term).Cmp(eps) < 0 {
			break
		}
	}
	for range halvings {
		sum.Mul(sum, sum)
	}
	return sum
}

// crLog is ln x correctly rounded (glibc's log is, to 0.52 ulp).
func crLog(x float64) float64 {
	v, _ := bigLn(bigf(x)).Float64()
	return v
}

// pyLog10 is glibc's log10 for finite x > 0 (fdlibm's __ieee754_log10).
func pyLog10(x float64) float64 {
	const (
		ivln10   = 4.34294481903251816668e-01
		log102hi = 3.01029995663611771306e-01
		log102lo = 3.69423907715893078616e-13
	)
	if x <= 0 || math.IsInf(x, 0) || math.IsNaN(x) || x < 0x1p-1022 {
		return math.Log10(x)
	}
	bits := math.Float64bits(x)
	hx := int32(bits >> 32)
	k := hx>>20 - 1023
	i := int32(uint32(k) >> 31)
	hx = hx&0x000fffff | (0x3ff-i)<<20
	y := float64(k + i)
	m := math.Float64frombits(uint64(uint32(hx))<<32 | bits&0xffffffff)
	z := y*log102lo + ivln10*crLog(m)
	return z + y*log102hi
}

// pyPow is x**y correctly rounded, for x > 0 and moderate results.
func pyPow(x, y float64) float64 {
	if y == 0 || x == 1 {
		return 1
	}
	if x <= 0 || math.IsInf(x, 0) || math.IsNaN(x) || math.IsInf(y, 0) || math.IsNaN(y) {
		return math.Pow(x, y)
	}
	var r *big.Float
	if n := int64(y); float64(n) == y && n > 0 && n < 1<<20 {
		// An integer power: by squaring, exact to libmPrec bits.
		r = bigf(1)
		for b := bigf(x); n > 0; n >>= 1 {
			if n&1 == 1 {
				r.Mul(r, b)
			}
			b.Mul(b, b)
		}
	} else {
		r = bigExp(bigf(0).Mul(bigf(y), bigLn(bigf(x))))
	}
	v, _ := r.Float64()
	return v
}
