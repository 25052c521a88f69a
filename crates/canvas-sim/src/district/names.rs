//! The names a district is dressed in: school kinds and their course catalogs, school, staff and person names.
//! Data, not logic; kept apart so the generator reads without it.

use super::Term;

pub(super) fn term_name(term: Term) -> String {
    let (year, season) = term.code.split_at(4);
    let season = match season {
        "FA" => "Fall",
        "SP" => "Spring",
        other => other,
    };
    format!("{season} {year}")
}

#[derive(Debug, Clone, Copy)]
pub(super) enum SchoolKind {
    High,
    Middle,
    Elementary,
}

impl SchoolKind {
    pub(super) fn for_index(i: u32) -> Self {
        match i % 3 {
            0 => SchoolKind::High,
            1 => SchoolKind::Middle,
            _ => SchoolKind::Elementary,
        }
    }
    pub(super) fn code_suffix(self) -> &'static str {
        match self {
            SchoolKind::High => "HS",
            SchoolKind::Middle => "MS",
            SchoolKind::Elementary => "ES",
        }
    }
    pub(super) fn name_suffix(self) -> &'static str {
        match self {
            SchoolKind::High => "High School",
            SchoolKind::Middle => "Middle School",
            SchoolKind::Elementary => "Elementary School",
        }
    }
    pub(super) fn catalog(self) -> &'static [(&'static str, &'static str)] {
        match self {
            SchoolKind::High => &[
                ("ALG1", "Algebra I"),
                ("ENG9", "English 9"),
                ("BIO", "Biology"),
                ("WHIST", "World History"),
                ("GEOM", "Geometry"),
                ("ENG10", "English 10"),
                ("CHEM", "Chemistry"),
                ("USHIST", "U.S. History"),
                ("SPAN1", "Spanish I"),
                ("CS1", "Intro to Computer Science"),
                ("ART1", "Studio Art"),
                ("PE", "Physical Education"),
                ("ALG2", "Algebra II"),
                ("PHYS", "Physics"),
                ("FREN1", "French I"),
                ("BAND", "Concert Band"),
            ],
            SchoolKind::Middle => &[
                ("MATH7", "Math 7"),
                ("ELA7", "English Language Arts 7"),
                ("SCI7", "Life Science"),
                ("SS7", "Ancient Civilizations"),
                ("MATH8", "Math 8"),
                ("ELA8", "English Language Arts 8"),
                ("SCI8", "Physical Science"),
                ("SS8", "U.S. History to 1877"),
                ("ART", "Art"),
                ("PE", "Physical Education"),
                ("CHOIR", "Choir"),
                ("TECH", "Design & Technology"),
            ],
            SchoolKind::Elementary => &[
                ("HR4", "Grade 4 Homeroom"),
                ("HR5", "Grade 5 Homeroom"),
                ("READ", "Reading Workshop"),
                ("STEM", "STEM Lab"),
                ("ART", "Art"),
                ("MUSIC", "Music"),
                ("PE", "Physical Education"),
                ("LIB", "Library"),
            ],
        }
    }
}

#[rustfmt::skip]
pub(super) const SCHOOL_NAMES: &[&str] = &[
    "Lincoln", "Washington", "Jefferson", "Roosevelt", "Franklin", "Madison", "Hamilton", "Kennedy", "Adams",
    "Monroe", "Garfield", "Wilson", "Edison", "Carver", "Whitman", "Dewey", "Parks", "Tubman", "Chavez", "Keller",
    "Curie", "Sequoyah",
];

pub(super) const STAFF_TITLES: &[&str] = &[
    "Counselor",
    "Librarian",
    "Instructional Aide",
    "Nurse",
    "Assistant Principal",
    "Office Manager",
    "Principal",
    "Speech Therapist",
];

#[rustfmt::skip]
pub(crate) const FIRST_NAMES: &[&str] = &[
    "Ava", "Liam", "Maya", "Noah", "Sofia", "Ethan", "Isabella", "Lucas", "Mia", "Mateo", "Amara",
    "Elijah", "Chloe", "James", "Priya", "Benjamin", "Zoe", "Daniel", "Aaliyah", "Henry", "Layla",
    "Samuel", "Nora", "Diego", "Hannah", "Omar", "Grace", "Caleb", "Leah", "Isaac", "Fatima",
    "Jack", "Emily", "Kai", "Ruby", "Wyatt", "Aria", "Julian", "Hazel", "Leo", "Mei", "Gabriel",
    "Naomi", "Owen", "Ines", "Theo", "Lucia", "Adrian", "Yara", "Miles", "Sara", "Jonah", "Keisha",
    "Arjun", "Elena", "Tomas", "Abigail", "Ezra", "Camila", "Malik",
];

#[rustfmt::skip]
pub(crate) const LAST_NAMES: &[&str] = &[
    "Smith", "Johnson", "Garcia", "Nguyen", "Brown", "Martinez", "Patel", "Kim", "Davis", "Rodriguez", "Wilson",
    "Lopez", "Chen", "Anderson", "Thomas", "Hernandez", "Moore", "Okafor", "Jackson", "Martin", "Lee", "Perez",
    "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen",
    "Wright", "Scott", "Torres", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera",
    "Campbell", "Mitchell", "Carter", "Roberts", "Yamamoto", "Novak", "Haddad", "Kowalski", "Osei", "Silva",
    "Ivanova", "Murphy", "Cohen", "Singh", "Reyes", "Bauer",
];
