% Driver: runs Grinsted's wavelet-coherence toolbox (wtc.m, xwt.m; GNU Octave) on the cases that
% make_grinsted_octave.py writes, and saves what the tests compare with (bioxen-dask's own code;
% the toolbox itself is not part of this repository).
%
%   octave --no-gui -q grinsted_octave.m TOOLBOX_DIR CASE_DIR OUT.mat
%
% CASE_DIR holds <case>_x.txt and <case>_y.txt (two columns: time, value) and cases.txt (one
% case name per line). For every case: Rsq, period, scale, coi and t from wtc (MonteCarloCount=0:
% no Monte Carlo, so nothing random reaches these outputs) and the phase angle(Wxy) of xwt's
% cross-wavelet transform (the same X and Y as wtc's, cut to the common span).
args = argv();
if numel(args) ~= 3
  error('usage: octave grinsted_octave.m TOOLBOX_DIR CASE_DIR OUT.mat');
end
addpath(args{1});
names = strsplit(strtrim(fileread(fullfile(args{2}, 'cases.txt'))), "\n");
out = struct();
for c = 1:numel(names)
  name = strtrim(names{c});
  x = load(fullfile(args{2}, [name '_x.txt']));
  y = load(fullfile(args{2}, [name '_y.txt']));
  randn('seed', 0);  % wtcsignif draws one surrogate even with MonteCarloCount=0 (unused here)
  [Rsq, period, scale, coi, sig, t] = wtc(x, y, 'MonteCarloCount', 0);
  Wxy = xwt(x, y);
  out.([name '_Rsq']) = Rsq;
  out.([name '_phase']) = angle(Wxy);
  out.([name '_period']) = period;
  out.([name '_scale']) = scale;
  out.([name '_coi']) = coi;
  out.([name '_t']) = t;
end
out.octave_version = OCTAVE_VERSION;
save('-v7', args{3}, '-struct', 'out');
