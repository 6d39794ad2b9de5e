package auditlog

import "time"

// appendTime appends t as t.AppendFormat(b, time.RFC3339Nano) does:
// every entry holds its event's time so formatted (in UTC, as
// encodeEvent makes it). The time package's path there cost about 810
// instructions an entry (its date and clock from the absolute time, two
// digits at a time through a general integer formatter), twice per gateway
// call (the request's entry and, batched, the results'); this one works
// the civil date out of the Unix seconds directly and writes digits in
// pairs from a table. Another location than UTC, and years outside
// 0–9999, which RFC 3339 does not describe and AppendFormat writes its own
// way, go to AppendFormat.
func appendTime(b []byte, t time.Time) []byte {
	if t.Location() != time.UTC {
		return t.AppendFormat(b, time.RFC3339Nano)
	}
	sec := t.Unix()
	days, rem := sec/86400, sec%86400
	if rem < 0 {
		days, rem = days-1, rem+86400
	}
	year, month, day := civil(days)
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, time.RFC3339Nano)
	}
	hms := int(rem)
	// Written into an array and appended once: an append per field
	// checked the slice's room each time.
	var d [len("2006-01-02T15:04:05.999999999Z")]byte
	put2(d[0:2], int(year/100))
	put2(d[2:4], int(year%100))
	d[4] = '-'
	put2(d[5:7], month)
	d[7] = '-'
	put2(d[8:10], day)
	d[10] = 'T'
	put2(d[11:13], hms/3600)
	d[13] = ':'
	put2(d[14:16], hms/60%60)
	d[16] = ':'
	put2(d[17:19], hms%60)
	n := 19
	if ns := t.Nanosecond(); ns != 0 {
		// Nine digits, less the trailing zeros (RFC3339Nano's .999999999).
		d[19] = '.'
		put2(d[20:22], ns/10_000_000)
		put2(d[22:24], ns/100_000%100)
		put2(d[24:26], ns/1000%100)
		put2(d[26:28], ns/10%100)
		d[28] = byte('0' + ns%10)
		n = 29
		for d[n-1] == '0' {
			n--
		}
	}
	d[n] = 'Z'
	return append(b, d[:n+1]...)
}

// digitPairs holds "00" to "99", for put2.
const digitPairs = "00010203040506070809" + "10111213141516171819" + "20212223242526272829" + "30313233343536373839" + "40414243444546474849" +
	"50515253545556575859" + "60616263646566676869" + "70717273747576777879" + "80818283848586878889" + "90919293949596979899"

// put2 writes n, 0–99, into d's two bytes.
func put2(d []byte, n int) {
	_ = d[1]
	d[0], d[1] = digitPairs[2*n], digitPairs[2*n+1]
}

// civil is the proleptic Gregorian date of the day days after
// 1970-01-01 (negative: before), the calendar Go's time package uses:
// days are counted in 400-year eras from 0000-03-01, so that the leap day
// ends each year of the count.
func civil(days int64) (year int64, month, day int) {
	z := days + 719468 // days since 0000-03-01
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097                                  // day of the era, 0–146096
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // year of the era, 0–399
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // day of the year from March 1st, 0–365
	mp := (5*doy + 2) / 153                                // month from March, 0–11
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp) + 3
	if month > 12 {
		month -= 12
	}
	year = yoe + era*400
	if month <= 2 {
		year++
	}
	return year, month, day
}
