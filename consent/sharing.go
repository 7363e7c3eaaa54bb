package consent

import (
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// SharingCode is one coded consent-to-share entry as GP systems record it.
// SharingCodes is read once at package initialisation; treat it as read-only.
type SharingCode struct {
	System  string
	Code    string
	Display string
	Dissent bool // true: dissent (refused / no consent); false: consent given
	// Scope says what the code is about: ScopeRecordSharing codes govern
	// sharing of the GP record with other care settings (what gpgate does);
	// ScopeNational codes govern upload to the national Summary Care
	// Record. SharingFromRecord uses record-sharing codes only.
	Scope string
}

// Sharing code scopes.
const (
	ScopeRecordSharing = "record-sharing"
	ScopeNational      = "national-upload"
)

// Sources (public material, read 2026; never copied):
//
//	[VISION-GPC] Cegedim Vision help, "Setting Patient Consent for GP Connect":
//	    https://help.cegedim-healthcare.co.uk/Vision_Spine_Services_Help_Centre/Content/Help_Topics/GP_Connect/Patient_Consent_for_GP_Connect.htm
//	    consent to share: 9Nd7.00, 93C0.00; dissent: 9Nd1.00, 93C1.00 (printed
//	    there as "93c1.00"; Read v2 is case-sensitive and the code is 93C1.,
//	    as [NWL] confirms).
//	[NHS-DMS] NHS Digital DMS vocabulary DocumentConsentSnCT (SNOMED subset
//	    43961000000137): https://data.developer.nhs.uk/fhir/sh/StructuredHeadings-1-0-RC3/Vocabulary/DocumentConsentSnCT.html
//	    425691002, 417528008, 417370002, 416409005, 416308001.
//	    NB 416308001 is *refused* consent for upload to the *national* record,
//	    not consent given; 416409005 is refused consent for the *local* record.
//	[NWL] a public North West London (Discovery subscriber) SQL script, table
//	    consent_code: Read v2 93C1. 93C3. 9Nd1. 9Ndo.; CTV3 XaKRw XaKRy XaKII XaXj6.
//	[VISION-SCR] Cegedim Vision help, "New Consent Preference Read Codes":
//	    https://help.cegedim-healthcare.co.uk/DLM840/Consultation_Manager/Content/ConMgr/25893.htm
//	    9Ndl. 9Ndm. 9Ndn. (SCR consent) 9Ndo. (SCR express dissent).
//	[EHI] Digital Health news 2007-02, "Read code will trigger care record
//	    opt-out": 93C3 = refused consent for upload to national shared record.
//
// Not verified, so not listed: a SNOMED concept for "No consent for
// electronic record sharing" (9Nd1.) and for "Express dissent for Summary
// Care Record dataset upload" (9Ndo.); CTV3 codes for consent *given* to
// record sharing (the CTV3 equivalents of 9Nd7. and 93C0.); Read v2 93C2.
var SharingCodes = []SharingCode{
	// Record sharing: consent.
	{fhir.ReadV2, "9Nd7.", "Consent given for electronic record sharing", false, ScopeRecordSharing},                    // [VISION-GPC]
	{fhir.ReadV2, "93C0.", "Consent given for upload to local shared electronic record", false, ScopeRecordSharing},     // [VISION-GPC]
	{fhir.SNOMED, "425691002", "Consent given for electronic record sharing", false, ScopeRecordSharing},                // [NHS-DMS]
	{fhir.SNOMED, "417528008", "Consent given for upload to local shared electronic record", false, ScopeRecordSharing}, // [NHS-DMS]
	// Record sharing: dissent.
	{fhir.ReadV2, "9Nd1.", "No consent for electronic record sharing", true, ScopeRecordSharing},                         // [VISION-GPC] [NWL]
	{fhir.ReadV2, "93C1.", "Refused consent for upload to local shared electronic record", true, ScopeRecordSharing},     // [VISION-GPC] [NWL]
	{fhir.CTV3, "XaKII", "No consent for electronic record sharing", true, ScopeRecordSharing},                           // [NWL]
	{fhir.CTV3, "XaKRw", "Refused consent for upload to local shared electronic record", true, ScopeRecordSharing},       // [NWL]
	{fhir.SNOMED, "416409005", "Refused consent for upload to local shared electronic record", true, ScopeRecordSharing}, // [NHS-DMS]
	// National record (Summary Care Record) upload.
	{fhir.SNOMED, "417370002", "Consent given for upload to national shared electronic record", false, ScopeNational},          // [NHS-DMS]
	{fhir.SNOMED, "416308001", "Refused consent for upload to national shared electronic record", true, ScopeNational},         // [NHS-DMS]
	{fhir.ReadV2, "93C3.", "Refused consent for upload to national shared electronic record", true, ScopeNational},             // [NWL] [EHI]
	{fhir.CTV3, "XaKRy", "Refused consent for upload to national shared electronic record", true, ScopeNational},               // [NWL]
	{fhir.ReadV2, "9Ndm.", "Express consent for core Summary Care Record dataset upload", false, ScopeNational},                // [VISION-SCR]
	{fhir.ReadV2, "9Ndn.", "Express consent for core and additional Summary Care Record dataset upload", false, ScopeNational}, // [VISION-SCR]
	{fhir.ReadV2, "9Ndo.", "Express dissent for Summary Care Record dataset upload", true, ScopeNational},                      // [VISION-SCR] [NWL]
	{fhir.CTV3, "XaXj6", "Express dissent for Summary Care Record dataset upload", true, ScopeNational},                        // [NWL]
}

// sharingTypes are the resource types a coded consent entry can arrive as.
var sharingTypes = map[string]bool{"Observation": true, "Condition": true, "Procedure": true, "Flag": true}

// SharingFromRecord derives the patient's consent to share from the coded
// record-sharing entries (SharingCodes with ScopeRecordSharing) in the
// record's Observations, Conditions, Procedures and Flags. The latest dated
// entry wins (clinical date, else meta.lastUpdated); at equal dates dissent
// wins. No entry: SharingUnknown (the agreement's default applies).
func SharingFromRecord(rec *fhir.Record) fhir.SharingConsent {
	return SharingFromRecordWith(rec, ScopeRecordSharing)
}

// SharingFromRecordWith is SharingFromRecord over the codes of the given
// scopes (e.g. ScopeRecordSharing and ScopeNational for a region that treats
// a Summary Care Record dissent as dissent to all sharing).
func SharingFromRecordWith(rec *fhir.Record, scopes ...string) fhir.SharingConsent {
	if rec == nil {
		return fhir.SharingUnknown
	}
	var best time.Time
	out := fhir.SharingUnknown
	for _, r := range rec.Resources {
		if len(r.Ix.Code) == 0 || !sharingTypes[r.Type] {
			continue
		}
		for _, c := range r.Ix.Code {
			code := c.Code
			if c.System == fhir.ReadV2 && len(code) > 5 {
				code = code[:5] // Read v2 with its term code: 9Nd7.00
			}
			sc := sharingIndex[fhir.Coding{System: c.System, Code: code}]
			if sc == nil || !inScopes(sc.Scope, scopes) {
				continue
			}
			when := r.Ix.Start
			if when.IsZero() {
				when = r.Ix.LastUpdated
			}
			v := fhir.SharingConsented
			if sc.Dissent {
				v = fhir.SharingDissent
			}
			switch {
			case out == fhir.SharingUnknown, when.After(best):
				best, out = when, v
			case when.Equal(best) && v == fhir.SharingDissent:
				out = v
			}
		}
	}
	return out
}

func inScopes(s string, scopes []string) bool {
	for _, x := range scopes {
		if x == s {
			return true
		}
	}
	return false
}

// sharingIndex is SharingCodes by system|code, built once: SharingCodes is
// read-only after package initialisation.
var sharingIndex = func() map[fhir.Coding]*SharingCode {
	m := make(map[fhir.Coding]*SharingCode, len(SharingCodes))
	for i := range SharingCodes {
		m[fhir.Coding{System: SharingCodes[i].System, Code: SharingCodes[i].Code}] = &SharingCodes[i]
	}
	return m
}()
