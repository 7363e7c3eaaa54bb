package consent

import (
	"strings"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Demo consumer organisations (fictitious ODS codes of hospital trusts).
const (
	DemoConsumerActive     = "RXX01" // active agreement: all areas, break-glass allowed
	DemoConsumerSuspended  = "RXX02" // suspended agreement
	DemoConsumerBPOnly     = "RXX03" // active, examination (blood pressure) only
	DemoConsumerNoBreakGls = "RXX04" // active, all areas, break-glass not allowed
)

// DemoAgreements returns the demo region's agreements, four per practice:
//
//	demo-<practice>-rxx01  RXX01  active     all areas        TREAT, ETREAT  break-glass
//	demo-<practice>-rxx02  RXX02  suspended  all areas        TREAT          break-glass
//	demo-<practice>-rxx03  RXX03  active     examination      TREAT          break-glass
//	demo-<practice>-rxx04  RXX04  active     all areas        TREAT          no break-glass
//
// Each starts a year before now and is open-ended, with implied consent for
// patients without a coded entry. Store them with AgreementStore.Add.
func DemoAgreements(practices []string, now time.Time) []Agreement {
	start := now.UTC().AddDate(-1, 0, 0).Truncate(24 * time.Hour)
	var out []Agreement
	for _, p := range practices {
		mk := func(consumer string, st Status, areas fhir.Areas, bg bool, purposes ...string) Agreement {
			return Agreement{ID: "demo-" + strings.ToLower(p) + "-" + strings.ToLower(consumer), Provider: p,
				Consumers: []string{consumer}, Areas: areas, Purposes: purposes, Start: start, Status: st,
				BreakGlass: bg, DefaultSharing: DefaultImplied}
		}
		out = append(out,
			mk(DemoConsumerActive, StatusActive, fhir.AllAreas, true, PurposeTreat, PurposeEmergency),
			mk(DemoConsumerSuspended, StatusSuspended, fhir.AllAreas, true, PurposeTreat),
			mk(DemoConsumerBPOnly, StatusActive, fhir.AreaExamination, true, PurposeTreat),
			mk(DemoConsumerNoBreakGls, StatusActive, fhir.AllAreas, false, PurposeTreat),
		)
	}
	return out
}
