DROP TABLE extent_periods;
