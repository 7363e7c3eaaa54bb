package demo

// The clinical vocabulary of the generator. SNOMED CT, Read v2 and dm+d codes
// are real; most were checked against the NHS test records in ../shared
// (EMIS GP Connect and GP2GP extracts), the rest are well-known concepts.

// code is a SNOMED CT concept with its Read v2 equivalent ("" when none).
type code struct {
	sct, sctDisplay   string
	read, readDisplay string
}

// drug is a dm+d VMP and how it is usually prescribed.
type drug struct {
	dmd, name string
	unit      string  // tablet | capsule | dose | application
	perDay    float64 // doses per day
	pack      int     // quantity issued per prescription
	days      int     // days one issue lasts
	route     code
}

var (
	routeOral       = code{sct: "26643006", sctDisplay: "Oral route"}
	routeInhalation = code{sct: "447694001", sctDisplay: "Respiratory tract route"}
	routeEye        = code{sct: "54485002", sctDisplay: "Ophthalmic route"}
)

var drugs = map[string]drug{
	"amlodipine5":     {"319283006", "Amlodipine 5mg tablets", "tablet", 1, 28, 28, routeOral},
	"amlodipine10":    {"319284000", "Amlodipine 10mg tablets", "tablet", 1, 28, 28, routeOral},
	"lisinopril10":    {"318859000", "Lisinopril 10mg tablets", "tablet", 1, 28, 28, routeOral},
	"ramipril10":      {"318906001", "Ramipril 10mg capsules", "capsule", 1, 28, 28, routeOral},
	"bendro":          {"317919004", "Bendroflumethiazide 2.5mg tablets", "tablet", 1, 28, 28, routeOral},
	"metformin500":    {"325278007", "Metformin 500mg tablets", "tablet", 2, 112, 56, routeOral},
	"gliclazide80":    {"325242002", "Gliclazide 80mg tablets", "tablet", 2, 112, 56, routeOral},
	"atorvastatin20":  {"320030001", "Atorvastatin 20mg tablets", "tablet", 1, 28, 28, routeOral},
	"rosuvastatin20":  {"408037007", "Rosuvastatin 20mg tablets", "tablet", 1, 28, 28, routeOral},
	"salbutamol":      {"39113611000001102", "Salbutamol 100micrograms/dose inhaler CFC free", "dose", 4, 200, 56, routeInhalation},
	"beclometasone":   {"320537007", "Beclometasone 100micrograms/dose inhaler", "dose", 4, 200, 56, routeInhalation},
	"levothyroxine":   {"374296008", "Levothyroxine sodium 100microgram tablets", "tablet", 1, 56, 56, routeOral},
	"citalopram10":    {"321989000", "Citalopram 10mg tablets", "tablet", 1, 28, 28, routeOral},
	"fluoxetine20":    {"321949006", "Fluoxetine 20mg capsules", "capsule", 1, 28, 28, routeOral},
	"furosemide40":    {"317972000", "Furosemide 40mg tablets", "tablet", 1, 28, 28, routeOral},
	"digoxin":         {"317896006", "Digoxin 125microgram tablets", "tablet", 1, 28, 28, routeOral},
	"aspirin75":       {"319773006", "Aspirin 75mg dispersible tablets", "tablet", 1, 28, 28, routeOral},
	"clopidogrel":     {"319799004", "Clopidogrel 75mg tablets", "tablet", 1, 28, 28, routeOral},
	"omeprazole20":    {"317291008", "Omeprazole 20mg gastro-resistant capsules", "capsule", 1, 28, 28, routeOral},
	"allopurinol":     {"330062008", "Allopurinol 300mg tablets", "tablet", 1, 28, 28, routeOral},
	"paracetamol":     {"322280009", "Paracetamol 500mg capsules", "capsule", 8, 100, 14, routeOral},
	"cocodamol30":     {"322366004", "Co-codamol 30mg/500mg capsules", "capsule", 8, 100, 14, routeOral},
	"amitriptyline":   {"321745007", "Amitriptyline 10mg tablets", "tablet", 1, 28, 28, routeOral},
	"tamsulosin":      {"38754011000001109", "Tamsulosin 400microgram modified-release capsules", "capsule", 1, 28, 28, routeOral},
	"cetirizine":      {"320818006", "Cetirizine 10mg tablets", "tablet", 1, 30, 30, routeOral},
	"ferrous":         {"327438003", "Ferrous sulfate 200mg tablets", "tablet", 2, 56, 28, routeOral},
	"cocp":            {"326324002", "Ethinylestradiol 30microgram / Levonorgestrel 150microgram tablets", "tablet", 1, 63, 84, routeOral},
	"amoxicillin500":  {"323510009", "Amoxicillin 500mg capsules", "capsule", 3, 15, 5, routeOral},
	"doxycycline":     {"324059006", "Doxycycline 100mg capsules", "capsule", 1, 8, 7, routeOral},
	"ciprofloxacin":   {"324607004", "Ciprofloxacin 250mg tablets", "tablet", 2, 6, 3, routeOral},
	"chloramphenicol": {"330295009", "Chloramphenicol 1% eye ointment", "application", 4, 1, 5, routeEye},
	"prednisolone":    {"325444003", "Prednisolone 5mg soluble tablets", "tablet", 6, 30, 5, routeOral},
}

// chronic is a long-term condition: its prevalence by age, the repeat
// medication that treats it and the monitoring it triggers.
type chronic struct {
	key      string
	c        code
	max      float64 // prevalence reached in old age
	mid      int     // age at half of max
	minAge   int
	sex      string // "" for both, male | female
	femaleX  float64
	drugs    [][]string // alternatives per line of treatment; one drug is picked per line
	labs     []string   // panels and yearly frequency via labRate
	labRate  float64
	bpRate   float64 // blood pressure readings per year
	resolve  float64 // probability the problem is resolved/inactive
	referral *code
}

var (
	refCardiology  = &code{sct: "183519002", sctDisplay: "Referral to cardiology service"}
	refVascular    = &code{sct: "183844002", sctDisplay: "Refer for vascular studies", read: "8HR7.00", readDisplay: "Refer for vascular studies"}
	refCounsellor  = &code{sct: "308448008", sctDisplay: "Referral to counsellor"}
	refAngiogram   = &code{sct: "183835003", sctDisplay: "Refer for angiogram"}
	refHandSurgeon = &code{sct: "306312003", sctDisplay: "Referral to hand surgeon"}
	refPalliative  = &code{sct: "306237005", sctDisplay: "Referral to palliative care service"}
)

var chronics = []chronic{
	{key: "htn", c: code{"38341003", "Hypertensive disorder", "G20..00", "Essential hypertension"}, max: 0.6, mid: 62, minAge: 30,
		drugs: [][]string{{"amlodipine5", "amlodipine10", "lisinopril10"}, {"bendro", ""}}, labs: []string{"ue"}, labRate: 1, bpRate: 3},
	{key: "t2dm", c: code{"44054006", "Type 2 diabetes mellitus", "C10F.00", "Type 2 diabetes mellitus"}, max: 0.2, mid: 62, minAge: 30,
		drugs: [][]string{{"metformin500"}, {"gliclazide80", "", ""}, {"atorvastatin20"}}, labs: []string{"hba1c", "hba1c", "ue", "lipids"}, labRate: 1, bpRate: 2},
	{key: "asthma", c: code{"195967001", "Asthma", "H33..00", "Asthma"}, max: 0.1, mid: 5, minAge: 3,
		drugs: [][]string{{"salbutamol"}, {"beclometasone", ""}}, resolve: 0.15},
	{key: "copd", c: code{"13645005", "Chronic obstructive lung disease", "H3...00", "Chronic obstructive pulmonary disease"}, max: 0.1, mid: 68, minAge: 40,
		drugs: [][]string{{"salbutamol"}, {"beclometasone"}}, labs: []string{"fbc"}, labRate: 0.5},
	{key: "af", c: code{"49436004", "Atrial fibrillation", "G573000", "Atrial fibrillation"}, max: 0.14, mid: 76, minAge: 45,
		drugs: [][]string{{"digoxin"}}, labs: []string{"ue"}, labRate: 1, bpRate: 1, referral: refCardiology},
	{key: "ckd3", c: code{"433144002", "Chronic kidney disease stage 3", "1Z12.00", "Chronic kidney disease stage 3"}, max: 0.22, mid: 76, minAge: 50,
		labs: []string{"ue", "ue", "fbc"}, labRate: 1, bpRate: 2},
	{key: "depression", c: code{"35489007", "Depressive disorder", "E2B..00", "Depressive disorder NEC"}, max: 0.12, mid: 25, minAge: 16, femaleX: 1.6,
		drugs: [][]string{{"citalopram10", "fluoxetine20"}}, resolve: 0.5, referral: refCounsellor},
	{key: "hypothyroid", c: code{"40930008", "Hypothyroidism", "C04..00", "Acquired hypothyroidism"}, max: 0.06, mid: 55, minAge: 20, femaleX: 3,
		drugs: [][]string{{"levothyroxine"}}, labs: []string{"tft"}, labRate: 1},
	{key: "oa", c: code{"396275006", "Osteoarthritis", "N05..00", "Osteoarthritis and allied disorders"}, max: 0.35, mid: 70, minAge: 45,
		drugs: [][]string{{"paracetamol", "cocodamol30", ""}}, referral: refHandSurgeon},
	{key: "ihd", c: code{"414545008", "Ischaemic heart disease", "G3...00", "Ischaemic heart disease"}, max: 0.14, mid: 74, minAge: 40, femaleX: 0.6,
		drugs: [][]string{{"aspirin75", "clopidogrel"}, {"atorvastatin20", "rosuvastatin20"}}, labs: []string{"lipids", "ue"}, labRate: 1, bpRate: 2, referral: refAngiogram},
	{key: "lipids", c: code{"13644009", "Hypercholesterolaemia", "C320.00", "Pure hypercholesterolaemia"}, max: 0.22, mid: 60, minAge: 30,
		drugs: [][]string{{"atorvastatin20", "rosuvastatin20"}}, labs: []string{"lipids", "lft"}, labRate: 1},
	{key: "gout", c: code{"90560007", "Gout", "C34..00", "Gout"}, max: 0.07, mid: 62, minAge: 30, sex: "male",
		drugs: [][]string{{"allopurinol"}}, labs: []string{"ue"}, labRate: 0.5, resolve: 0.2},
	{key: "hf", c: code{"84114007", "Heart failure", "G58..00", "Heart failure"}, max: 0.09, mid: 82, minAge: 55,
		drugs: [][]string{{"furosemide40"}, {"ramipril10"}}, labs: []string{"ue", "ue"}, labRate: 1, bpRate: 2, referral: refCardiology},
	{key: "gord", c: code{"235595009", "Gastroesophageal reflux disease", "", ""}, max: 0.12, mid: 50, minAge: 25,
		drugs: [][]string{{"omeprazole20"}}, resolve: 0.3},
	{key: "bph", c: code{"266569009", "Benign prostatic hyperplasia", "K20..00", "Benign prostatic hypertrophy"}, max: 0.3, mid: 72, minAge: 50, sex: "male",
		drugs: [][]string{{"tamsulosin"}}},
	{key: "claudication", c: code{"63491006", "Intermittent claudication", "G73z000", "Intermittent claudication"}, max: 0.05, mid: 72, minAge: 50,
		drugs: [][]string{{"aspirin75"}}, referral: refVascular},
	{key: "rhinitis", c: code{"61582004", "Allergic rhinitis", "H17..00", "Allergic rhinitis"}, max: 0.12, mid: 10, minAge: 5,
		drugs: [][]string{{"cetirizine"}}, resolve: 0.3},
	{key: "anxiety", c: code{"197480006", "Anxiety disorder", "E200.00", "Anxiety states"}, max: 0.07, mid: 25, minAge: 14, femaleX: 1.5,
		resolve: 0.5, referral: refCounsellor},
	{key: "ida", c: code{"87522002", "Iron deficiency anaemia", "D00..00", "Iron deficiency anaemias"}, max: 0.04, mid: 40, minAge: 16, femaleX: 2,
		drugs: [][]string{{"ferrous"}}, labs: []string{"fbc", "fbc"}, labRate: 1, resolve: 0.8},
	{key: "backpain", c: code{"279039007", "Low back pain", "N145.00", "Backache, unspecified"}, max: 0.1, mid: 40, minAge: 20,
		drugs: [][]string{{"cocodamol30", "amitriptyline", ""}}, resolve: 0.7},
	{key: "migraine", c: code{"37796009", "Migraine", "F26..00", "Migraine"}, max: 0.06, mid: 20, minAge: 12, femaleX: 2.5,
		resolve: 0.4},
}

// acute is a diagnosis made at one consultation, with its usual treatment.
type acute struct {
	c      code
	drugs  []string // "" means no prescription
	minAge int
	maxAge int
}

var acutes = []acute{
	{code{"49727002", "Cough", "171..00", "Cough"}, []string{"", ""}, 0, 120},
	{code{"32398004", "Bronchitis", "H30..00", "Bronchitis unspecified"}, []string{"amoxicillin500", "doxycycline", ""}, 16, 120},
	{code{"68566005", "Urinary tract infectious disease", "K190.00", "Urinary tract infection, site not specified"}, []string{"ciprofloxacin"}, 16, 120},
	{code{"17741008", "Acute tonsillitis", "H03..00", "Acute tonsillitis"}, []string{"amoxicillin500", ""}, 3, 60},
	{code{"9826008", "Conjunctivitis", "F4C0.00", "Acute conjunctivitis"}, []string{"chloramphenicol"}, 0, 120},
	{code{"21522001", "Abdominal pain", "1969.00", "Abdominal pain"}, []string{""}, 5, 120},
	{code{"267032009", "Tired all the time", "1683.00", "Tired all the time"}, []string{""}, 16, 120},
	{code{"407645004", "Dizziness on standing up", "1B55.00", "Dizziness on standing up"}, []string{""}, 40, 120},
	{code{"65363002", "Otitis media", "F52..00", "Otitis media"}, []string{"amoxicillin500", ""}, 0, 14},
	{code{"25064002", "Headache", "1B1G.00", "Headache"}, []string{"", "paracetamol"}, 8, 120},
	{code{"279039007", "Low back pain", "N145.00", "Backache, unspecified"}, []string{"cocodamol30", ""}, 18, 120},
}

// labTest is one result line of a pathology panel.
type labTest struct {
	c          code
	loinc      string
	unit, ucum string
	low, high  float64 // reference range (0 = open)
	mean, sd   float64 // values drawn around mean
	decimals   int
}

type panel struct {
	key   string
	c     code
	serum bool // serum specimen, otherwise whole blood
	tests []labTest
}

var panels = map[string]panel{
	"fbc": {key: "fbc", c: code{"1022441000000101", "FBC - full blood count", "424..00", "Full blood count - FBC"}, tests: []labTest{
		{code{"1022431000000105", "Haemoglobin estimation", "423..00", "Haemoglobin estimation"}, "718-7", "g/L", "g/L", 130, 170, 138, 14, 0},
		{code{"1022541000000102", "Total white cell count", "42H..00", "Total white cell count"}, "6690-2", "10*9/L", "10*9/L", 4, 11, 7, 1.8, 1},
		{code{"1022651000000100", "Platelet count", "42P..00", "Platelet count"}, "777-3", "10*9/L", "10*9/L", 150, 400, 260, 60, 0},
	}},
	"ue": {key: "ue", serum: true, c: code{"1000971000000107", "Urea and electrolytes level", "44JB.00", "Urea and electrolytes"}, tests: []labTest{
		{code{"1000661000000107", "Serum sodium level", "44I5.00", "Serum sodium"}, "2951-2", "mmol/L", "mmol/L", 133, 146, 139, 2.5, 0},
		{code{"1000651000000109", "Serum potassium level", "44I4.00", "Serum potassium"}, "2823-3", "mmol/L", "mmol/L", 3.5, 5.3, 4.4, 0.4, 1},
		{code{"1000951000000103", "Serum urea level", "44J9.00", "Serum urea level"}, "", "mmol/L", "mmol/L", 2.5, 7.8, 5.5, 1.5, 1},
		{code{"1000731000000107", "Serum creatinine level", "44J3.00", "Serum creatinine"}, "14682-9", "umol/L", "umol/L", 59, 104, 82, 14, 0},
		{code{"1020291000000106", "GFR calculated by abbreviated MDRD", "451E.00", "GFR calculated abbreviated MDRD"}, "33914-3", "mL/min/1.73m2", "mL/min/{1.73_m2}", 60, 0, 78, 12, 0},
	}},
	"hba1c": {key: "hba1c", c: code{"999791000000106", "Haemoglobin A1c level - International Federation of Clinical Chemistry and Laboratory Medicine standardised", "42W5.00", "Haemoglobin A1c level - IFCC standardised"}, tests: []labTest{
		{code{"999791000000106", "Haemoglobin A1c level - International Federation of Clinical Chemistry and Laboratory Medicine standardised", "42W5.00", "Haemoglobin A1c level - IFCC standardised"}, "59261-8", "mmol/mol", "mmol/mol", 20, 41, 38, 3, 0},
	}},
	"lipids": {key: "lipids", serum: true, c: code{"1005661000000103", "Serum lipids level", "44O..00", "Serum lipids"}, tests: []labTest{
		{code{"1005671000000105", "Serum cholesterol level", "44P..00", "Serum cholesterol"}, "14647-2", "mmol/L", "mmol/L", 0, 5, 5.2, 0.9, 1},
	}},
	"tft": {key: "tft", serum: true, c: code{"1016851000000107", "Thyroid function test", "", ""}, tests: []labTest{
		{code{"1022791000000101", "Serum TSH (thyroid stimulating hormone) level", "442W.00", "Serum TSH level"}, "3016-3", "mU/L", "m[IU]/L", 0.27, 4.2, 2.1, 0.9, 2},
	}},
	"lft": {key: "lft", serum: true, c: code{"997531000000108", "Liver function test", "44D6.00", "Liver function test"}, tests: []labTest{
		{code{"1018251000000107", "Serum alanine aminotransferase level", "44G3.00", "ALT/SGPT serum level"}, "1742-6", "U/L", "U/L", 0, 40, 24, 9, 0},
		{code{"1000621000000104", "Serum alkaline phosphatase level", "44F..00", "Serum alkaline phosphatase"}, "6768-6", "U/L", "U/L", 30, 130, 80, 20, 0},
		{code{"1000821000000103", "Serum albumin level", "44M4.00", "Serum albumin"}, "1751-7", "g/L", "g/L", 35, 50, 42, 3, 0},
		{code{"999691000000104", "Serum bilirubin level", "44E..00", "Serum bilirubin level"}, "14631-6", "umol/L", "umol/L", 0, 21, 10, 4, 0},
	}},
}

var screenPanels = []string{"fbc", "lft", "ue", "lipids", "tft"}

// allergen is a coded allergy or intolerance.
type allergen struct {
	c        code
	category string // medication | food | environment
	reaction []code
}

var (
	rxRash        = code{sct: "271807003", sctDisplay: "Eruption of skin"}
	rxUrticaria   = code{sct: "126485001", sctDisplay: "Urticaria"}
	rxAnaphylaxis = code{sct: "39579001", sctDisplay: "Anaphylaxis"}
	rxNausea      = code{sct: "422587007", sctDisplay: "Nausea"}
	rxDyspnoea    = code{sct: "267036007", sctDisplay: "Dyspnea"}
)

var allergens = []allergen{
	{code{"91936005", "Allergy to penicillin", "14L1.00", "H/O: penicillin allergy"}, "medication", []code{rxRash, rxUrticaria, rxAnaphylaxis}},
	{code{"292967008", "Amoxycillin adverse reaction", "TJ00300", "Adverse reaction to amoxycillin"}, "medication", []code{rxRash, rxNausea}},
	{code{"294833000", "Biphosphonates allergy", "", ""}, "medication", []code{rxNausea}},
	{code{"293586001", "Allergy to aspirin", "", ""}, "medication", []code{rxUrticaria, rxDyspnoea}},
	{code{"91935009", "Allergy to peanuts", "SN58200", "Peanut allergy"}, "food", []code{rxAnaphylaxis, rxUrticaria}},
	{code{"91930004", "Allergy to eggs", "", ""}, "food", []code{rxRash, rxUrticaria}},
	{code{"300916003", "Latex allergy", "", ""}, "environment", []code{rxRash}},
}

var noKnownAllergy = code{sct: "716186003", sctDisplay: "No known allergy"}

type procedure struct {
	c      code
	minAge int
	rate   float64 // per person per decade over minAge
}

var procedures = []procedure{
	{code{"265157000", "Total prosthetic replacement of hip joint using cement", "7K20.00", "Total prosthetic replacement of hip joint using cement"}, 60, 0.05},
	{code{"265170009", "Total prosthetic replacement of knee joint using cement", "7K30.00", "Total prosthetic replacement of knee joint using cement"}, 60, 0.05},
	{code{"265371001", "Diagnostic fibreoptic endoscopic examination of upper gastrointestinal tract", "761F.00", "Diagnostic fibreoptic endoscopic exam of upper GI tract"}, 30, 0.08},
	{code{"46825001", "Electrocardiographic monitoring", "32...00", "Electrocardiography"}, 40, 0.3},
	{code{"53524009", "Ophthalmoscopy", "3128.00", "Fundoscopy"}, 40, 0.1},
	{code{"80146002", "Appendectomy", "", ""}, 10, 0.02},
	{code{"38102005", "Cholecystectomy", "", ""}, 30, 0.03},
	{code{"86198006", "Influenza vaccination", "65E..00", "Influenza vaccination"}, 65, 5},
}

type flagDef struct {
	c        code
	category string // flag-category code
	display  string
	minAge   int
	prob     float64
}

var flags = []flagDef{
	{code{sct: "129839007", sctDisplay: "At risk for falls"}, "safety", "Safety", 75, 0.3},
	{code{sct: "304253006", sctDisplay: "Not for resuscitation"}, "clinical", "Clinical", 80, 0.12},
	{code{sct: "914271000000103", sctDisplay: "Impaired ability to recognise safety risks"}, "safety", "Safety", 70, 0.05},
	{code{sct: "160725005", sctDisplay: "Lives alone - help available"}, "behavioral", "Behavioral", 70, 0.15},
}

var (
	encCheckUp   = code{sct: "185349003", sctDisplay: "Encounter for check up"}
	encSymptom   = code{sct: "185345009", sctDisplay: "Encounter for symptom"}
	encTelephone = code{sct: "185317003", sctDisplay: "Telephone encounter"}
	encHome      = code{sct: "439708006", sctDisplay: "Home visit"}
	encAdmission = code{sct: "32485007", sctDisplay: "Hospital admission"}
	encProblem   = code{sct: "185347001", sctDisplay: "Encounter for problem"}
)

var admissionReasons = []code{
	{sct: "22298006", sctDisplay: "Myocardial infarction", read: "G30..00", readDisplay: "Acute myocardial infarction"},
	{sct: "233604007", sctDisplay: "Pneumonia", read: "H2...00", readDisplay: "Pneumonia and influenza"},
	{sct: "71620000", sctDisplay: "Fracture of femur", read: "S30..00", readDisplay: "Fracture of neck of femur"},
	{sct: "230690007", sctDisplay: "Cerebrovascular accident", read: "G66..00", readDisplay: "Stroke and cerebrovascular accident unspecified"},
	{sct: "195951007", sctDisplay: "Acute exacerbation of chronic obstructive airways disease", read: "H3122", readDisplay: "Acute exacerbation of chronic obstructive airways disease"},
	{sct: "68566005", sctDisplay: "Urinary tract infectious disease", read: "K190.00", readDisplay: "Urinary tract infection, site not specified"},
}

// Names and places: fictional, UK-shaped.
var (
	givenMale   = []string{"Oliver", "George", "Harry", "Jack", "Jacob", "Noah", "Charlie", "Thomas", "Oscar", "William", "James", "David", "John", "Michael", "Peter", "Robert", "Richard", "Paul", "Mark", "Andrew", "Stephen", "Christopher", "Daniel", "Matthew", "Arthur", "Leo", "Mohammed", "Ravi", "Tomasz", "Kwame"}
	givenFemale = []string{"Olivia", "Amelia", "Isla", "Ava", "Emily", "Sophie", "Grace", "Lily", "Freya", "Mia", "Margaret", "Susan", "Elizabeth", "Sarah", "Helen", "Karen", "Julie", "Emma", "Rachel", "Claire", "Joan", "Patricia", "Mary", "Ruth", "Priya", "Aisha", "Zofia", "Niamh", "Chloe", "Hannah"}
	family      = []string{"Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke", "Patel", "Khan", "Hughes", "Edwards", "Turner", "Hill", "Moore", "Cooper", "Ward", "Morris", "King", "Harrison", "Lewis", "Baker", "Lee", "Allen", "Morgan", "Shah", "Kowalski", "Okafor", "Murphy", "O'Brien", "Begum", "Ahmed", "Scott", "Young", "Mitchell", "Carter", "Bennett", "Fletcher"}
	streets     = []string{"Church Street", "High Street", "Station Road", "Mill Lane", "Victoria Road", "Park Avenue", "Queen Street", "The Green", "Chapel Lane", "Moor Lane", "Westgate", "Kirkgate", "Beck Side", "Orchard Close", "Willow Way", "Manor Road", "School Lane", "North Parade", "Bridge Street", "Hollins Lane"}
	inwardChars = "ABDEFGHJLNPQRSTUWXYZ"
)

type practiceSeed struct {
	name, street, town, district, outward string
}

var practiceSeeds = []practiceSeed{
	{"Riverside Medical Centre", "Canal Road", "Otleyford", "West Yorkshire", "LS29"},
	{"Moorland Surgery", "Moor Lane", "Haworth Bridge", "West Yorkshire", "BD22"},
	{"Castle Street Practice", "Castle Street", "Skipley", "North Yorkshire", "BD23"},
	{"Wharfe Valley Health Centre", "Bridge Street", "Wetherby Cross", "West Yorkshire", "LS22"},
	{"Aire View Surgery", "Aire Street", "Keighton", "West Yorkshire", "BD21"},
	{"Dales Family Practice", "Market Place", "Settlegate", "North Yorkshire", "BD24"},
	{"Calder Medical Group", "Calder Road", "Hebden Vale", "West Yorkshire", "HX7"},
	{"Nidd Lane Surgery", "Nidd Lane", "Knaresby", "North Yorkshire", "HG5"},
}
