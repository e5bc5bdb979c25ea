"""Calibration of the raw demo tables: rates and distribution parameters, one table per source.

The patient course itself (acuity, vitals, labels) is :mod:`tardiff.demo.simulator`'s; these
tables set how it is recorded. Probabilities are per subject, admission, stay or row as named;
``(a, b)`` is a uniform range (integer draws exclude ``b``), ``(mean, sd)`` a normal; a dict is a
categorical ``{option: probability}`` and a list equally likely options.
"""

from __future__ import annotations

MIMIC3 = {
    # subjects and admissions: a death ends the subject
    "neonate": 0.03,  # subjects that are neonates (one NICU stay, no age)
    "stays_per_subject": {1: 0.82, 2: 0.13, 3: 0.05},  # adults
    "same_admission": 0.3,  # a survivor's next ICU stay is in the same admission
    "male": 0.57,
    "age": (66, 16),  # years, normal, clipped to age_range
    "age_range": (18, 101),
    "minor": 0.015,  # adults replaced by a minor (age uniform in minor_age)
    "minor_age": (15, 18),
    "shifted_age": (90, 300.0),  # ages from 90 on are shifted to 300 years (MIMIC's DOB shift)
    "carevue_neonate": 0.9,  # DBSOURCE carevue, else metavision
    "carevue_adult": 2 / 3,
    "first_admit_years": 95,  # first admission uniform within this many years from 2100
    "emergency": 0.8,  # non-neonatal admissions that are EMERGENCY or URGENT, else ELECTIVE
    "readmit_gap_days": (20, 900),  # discharge to the subject's next admission
    "lead_hours_emergency": (1, 12),  # hospital admission to the first ICU stay
    "lead_hours_elective": (0.2, 6),
    "ward_hours": (6, 96),  # ICU discharge to the next ICU stay of the admission
    "discharge_days": (0.5, 12),  # last ICU discharge to hospital discharge of a survivor
    "death_in_icu": 0.75,  # hospital deaths at OUTTIME, else death_after_hours later
    "death_after_hours": (2, 144),
    # PATIENTS
    "later_death": 0.25,  # surviving subjects with a DOD after their last discharge
    "later_death_days": (1, 2000),
    "dod_ssn": 0.6,  # in-hospital deaths also in DOD_SSN (later deaths always are)
    # ADMISSIONS (neonates: NEWBORN, Private, no LANGUAGE or MARITAL_STATUS)
    "admission_type": {"EMERGENCY": 0.95, "URGENT": 0.05},  # of emergency admissions
    "admission_location": {  # of emergency admissions, else PHYS REFERRAL/NORMAL DELI
        "EMERGENCY ROOM ADMIT": 0.7,
        "TRANSFER FROM HOSP/EXTRAM": 0.2,
        "CLINIC REFERRAL/PREMATURE": 0.1,
    },
    "discharge_location": {  # of survivors
        "HOME": 0.35,
        "HOME HEALTH CARE": 0.3,
        "SNF": 0.2,
        "REHAB/DISTINCT PART HOSP": 0.1,
        "LONG TERM CARE HOSPITAL": 0.05,
    },
    "ed_registration_hours": (1, 8),  # EDREGTIME before ADMITTIME (ER admissions)
    "ed_out_minutes": (0, 40),  # EDOUTTIME after ADMITTIME
    "diagnosis": {
        "SEPSIS": 0.15,
        "PNEUMONIA": 0.15,
        "CONGESTIVE HEART FAILURE": 0.12,
        "GASTROINTESTINAL BLEED": 0.1,
        "INTRACRANIAL HEMORRHAGE": 0.08,
        "CORONARY ARTERY DISEASE\\CORONARY ARTERY BYPASS GRAFT /SDA": 0.15,
        "ALTERED MENTAL STATUS": 0.1,
        "S/P FALL": 0.08,
        "ACUTE RENAL FAILURE;TELEMETRY": 0.07,
    },
    "insurance": {
        "Medicare": 0.55,
        "Private": 0.3,
        "Medicaid": 0.1,
        "Government": 0.03,
        "Self Pay": 0.02,
    },
    "language": {"ENGL": 0.7, "SPAN": 0.05, "RUSS": 0.02, None: 0.23},
    "religion": {
        "CATHOLIC": 0.35,
        "NOT SPECIFIED": 0.25,
        "PROTESTANT QUAKER": 0.15,
        "JEWISH": 0.1,
        "UNOBTAINABLE": 0.1,
        None: 0.05,
    },
    "marital_status": {
        "MARRIED": 0.45,
        "SINGLE": 0.25,
        "WIDOWED": 0.13,
        "DIVORCED": 0.07,
        None: 0.1,
    },
    "ethnicity": {
        "WHITE": 0.7,
        "BLACK/AFRICAN AMERICAN": 0.1,
        "HISPANIC OR LATINO": 0.05,
        "ASIAN": 0.05,
        "UNKNOWN/NOT SPECIFIED": 0.1,
    },
    # ICUSTAYS (neonates: NICU)
    "careunit": {"MICU": 0.35, "SICU": 0.15, "CCU": 0.15, "CSRU": 0.2, "TSICU": 0.15},
    "last_careunit_micu": 0.08,  # adult stays transferred to the MICU
    "wards": [7, 12, 14, 15, 23, 33, 52, 57],
    # CHARTEVENTS: share of charting rounds with a row, per item group
    "neonate_offset": {"hr": 45, "rr": 20, "sbp": -30, "dbp": -20},  # added to neonates' vitals
    "chart_hr": 0.97,
    "chart_spo2": 0.93,
    "chart_rr": 0.92,
    "rr_item": 0.9,  # respiratory rate item, else total rate (615 / 224690)
    "chart_art": 0.93,  # arterial BP of adults with an arterial line
    "chart_nbp_with_art": 0.2,  # non-invasive BP with an arterial line
    "chart_nbp": 0.9,  # non-invasive BP without
    "nbp_sd": 4.0,  # non-invasive BP error (mmHg; arterial: none)
    "bp_mean_sd": 1.5,  # charted mean BP around DBP + (SBP - DBP) / 3
    "chart_temp": 0.9,  # in the stay's 4-hourly rounds
    # temperature unit by a uniform u: Fahrenheit if u < fahrenheit, else Celsius; Celsius too on
    # CareVue (calculated, 677) if u < carevue_calculated, on MetaVision if u >= metavision_celsius
    "temp_units": {"fahrenheit": 0.8, "carevue_calculated": 0.6, "metavision_celsius": 0.75},
    "gcs_every_hours": {1: 0.2, 2: 0.5, 4: 0.3},
    "chart_glucose": 0.8,  # in the 6-hourly rounds
    "glucose_item": [0.6, 0.25, 0.15],  # probabilities of the three glucose items per DBSOURCE
    "extra_other_words": 0.3,  # non-target text items: not the first (normal) answer
    "o2_flow": [2, 3, 4, 6],  # L/min (MetaVision)
    "hr_alarm": {"High": 120.0, "Low": 50.0},
    # CHARTEVENTS dirty values (per row)
    "spo2_fraction": 0.005,  # SpO2 charted as a fraction
    "fahrenheit_as_celsius": 0.02,  # Celsius items holding Fahrenheit
    "typo": 0.001,  # numeric values times 10 (heart rate: typo_hr)
    "typo_hr": 999.0,
    "bp_text": 0.015,  # blood pressure as "SBP/DBP" text, no VALUENUM
    "error_row": 0.005,  # MetaVision numeric rows duplicated with ERROR = 1 and a garbage value
    "error_scale": (0, 20),  # garbage value: the value times this
    "warning": 0.02,  # MetaVision WARNING = 1
    # all events
    "no_icustay": 0.01,  # chart and output rows without ICUSTAY_ID
    "no_hadm": 0.5,  # of chart rows without ICUSTAY_ID, also without HADM_ID
    "chart_store_minutes": (1, 90),  # CHARTTIME to STORETIME
    "output_store_minutes": (1, 60),
    "cgid": (14000, 21000),
    # LABEVENTS (schedule: simulator.lab_rounds)
    "lab_jitter_hours": (0, 1),
    "pre_icu_draw_hours": (8, 30),  # one draw before INTIME, if within the admission
    "outpatient": 0.05,  # stays with an outpatient draw (no HADM_ID)
    "outpatient_days": (5, 60),  # before INTIME
    "panels": {"cbc": 0.9, "gas": 0.5, "liver": 0.3},  # per draw; chem always
    "lab_error": 0.002,  # VALUE "ERROR"
    "bilirubin_below": 0.15,  # bilirubin under this is "<0.1"
    # OUTPUTEVENTS: urine every 1.5 h, mL since the previous row
    "urine_every_hours": 1.5,
    "urine_offset_hours": (0.5, 1.5),
    "urine_sd": 0.3,  # log-normal measurement error
    "urine_round_ml": 5,
    "urine_item": (0.85, 0.95),  # cumulative probabilities of the DBSOURCE's urine items
    "irrigant_stay": 0.02,  # MetaVision stays with GU irrigant rows (227488) ...
    "irrigant_row": 0.3,  # ... on this share of their rows
    "output_error": 0.001,  # MetaVision ISERROR = 1
}

EICU = {
    # patients, hospital stays and unit stays: a death ends the patient
    "hospital_stays_per_patient": {1: 0.85, 2: 0.12, 3: 0.03},
    "second_visit": 0.1,  # a survivor's next unit stay is a readmission in the same hospital stay
    "before_unit_minutes": (0, 48 * 60),  # hospital admission to the first unit stay
    "between_units_minutes": (6 * 60, 4 * 1440),
    "death_in_unit": 0.75,
    "death_after_minutes": (120, 6 * 1440),  # unit discharge to a death in hospital
    "discharge_after_minutes": (720, 12 * 1440),  # unit discharge to discharge of a survivor
    "age": (63, 17),  # years, normal, clipped to age_range; from 90 on "> 89"
    "age_range": (16, 101),
    "age_missing": 0.003,
    "status_missing": 0.005,  # hospital stays without a discharge status
    "weight": (83, 22),  # kg, normal, clipped to weight_range
    "weight_range": (35, 250),
    "height": (170, 10),  # cm
    "height_missing": 0.03,
    "admission_weight_missing": 0.05,
    "discharge_weight_missing": 0.3,
    "weight_change_sd": 2,  # discharge weight around the admission weight (kg)
    "gender": {"Female": 0.455, "Male": 0.54, "Unknown": 0.003, "": 0.002},
    "ethnicity": {
        "Caucasian": 0.76,
        "African American": 0.11,
        "Hispanic": 0.04,
        "Asian": 0.02,
        "Native American": 0.01,
        "Other/Unknown": 0.05,
        "": 0.01,
    },
    "diagnosis": [
        "Sepsis, pulmonary",
        "Sepsis, renal/UTI (including bladder)",
        "CHF, congestive heart failure",
        "Infarction, acute myocardial (MI)",
        "CABG alone, coronary artery bypass grafting",
        "Rhythm disturbance (atrial, supraventricular)",
        "Overdose, other toxin, poison or drug",
        "Diabetic ketoacidosis",
        "Emphysema/bronchitis",
        "Stroke",
        "GI perforation/rupture",
        "Cardiac arrest (with or without respiratory arrest; for respiratory arrest see "
        "Respiratory System)",
    ],
    "hospital_admit_source": {
        "Emergency Department": 0.45,
        "Operating Room": 0.15,
        "Floor": 0.1,
        "Direct Admit": 0.15,
        "Other Hospital": 0.1,
        "": 0.05,
    },
    "discharge_year": [2014, 2015],
    "hospital_discharge_location": {  # of survivors
        "Home": 0.6,
        "Skilled Nursing Facility": 0.2,
        "Rehabilitation": 0.08,
        "Other External": 0.07,
        "Nursing Home": 0.05,
    },
    "unit_type": {
        "Med-Surg ICU": 0.5,
        "MICU": 0.1,
        "CCU-CTICU": 0.1,
        "SICU": 0.08,
        "Neuro ICU": 0.08,
        "Cardiac ICU": 0.06,
        "CSICU": 0.04,
        "CTICU": 0.04,
    },
    "unit_admit_source": {  # of first visits (readmissions come from the Floor)
        "Emergency Department": 0.5,
        "Operating Room": 0.15,
        "Floor": 0.15,
        "Direct Admit": 0.1,
        "Recovery Room": 0.1,
    },
    "stepdown": 0.05,  # first visits of unit stay type "stepdown/other", else "admit"
    "unit_discharge_location": {  # of survivors of the unit stay
        "Floor": 0.55,
        "Step-Down Unit (SDU)": 0.2,
        "Home": 0.1,
        "Other ICU": 0.05,
        "Telemetry": 0.1,
    },
    # vitalPeriodic: 5-minute medians
    "interfaced": 0.92,  # stays with monitor data
    "late_start_steps": 7,  # the first 0-6 five-minute values are missing
    "dropouts_per_day": 0.8,
    "dropout_steps": (3, 72),
    "missing": {"hr": 0.01, "temp": 0.05, "spo2": 0.05, "rr": 0.08, "bp": 0.03},  # per value
    "temp_probe": 0.05,  # stays with a temperature probe
    "rr_monitored": 0.95,  # stays with a monitored respiratory rate
    "hr_artifact": 0.0005,  # heart rate 0 or 300
    "st_monitored": 0.4,  # stays with ST segments
    "st_sd": 0.1,
    "cvp": 0.2,  # stays with a CVP
    "cvp_mmhg": (10, 4),
    # vitalAperiodic: non-invasive BP
    "nibp_minutes": (15.0, 60.0),  # interval
    "nibp_minutes_with_art": (60.0, 240.0),
    "nibp_start_minutes": (0, 15),
    "nibp_sd": 4,
    "nibp_mean_sd": 1.5,  # mean around DBP + (SBP - DBP) / 3
    "nibp_mean_missing": 0.1,
    # nurseCharting: share of hourly rounds with a row
    "chart_hr": 0.7,
    "chart_rr": 0.7,
    "chart_spo2": 0.6,
    "chart_nibp": 0.5,  # without an arterial line
    "temp_celsius": 0.85,  # of the 4-hourly temperatures, else Fahrenheit
    "chart_glucose": 0.8,  # of the 6-hourly rounds
    "gcs_unable": 0.03,  # GCS "Unable to score due to medication"
    "entry_delay_minutes": (0, 60),
    # lab (schedule: simulator.lab_rounds)
    "blood_gas": 0.5,  # per draw and blood gas lab (labtypeid 7)
    "other_lab": 0.9,  # per draw and other lab
    "bilirubin_below": 0.15,  # bilirubin under this is "<0.1"
    "revised_minutes": (0, 120),
}
