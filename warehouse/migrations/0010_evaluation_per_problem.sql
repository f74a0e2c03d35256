-- Each problem's pass rate, so a method's gain over the base can be judged problem by problem (a
-- paired interval, far narrower than the two scores' own intervals), and the share of responses whose
-- thinking ended (a student that never closes it never answers). NULL on rows measured before.
ALTER TABLE evaluations ADD COLUMN per_problem_json VARCHAR;
ALTER TABLE evaluations ADD COLUMN closed DOUBLE;
