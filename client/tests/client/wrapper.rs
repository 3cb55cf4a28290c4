//! `solme-license`: a seat held while a command runs, returned when it ends.
