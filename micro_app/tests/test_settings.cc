// The generated kws_settings.h is consistent with the core and itself.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "test_util.h"

namespace {

TEST(Settings, TablesInitTheCore) {
  static kws::MfccFrontend fe;
  EXPECT_TRUE(fe.Init(kws::SettingsFrontendTables()));
}

TEST(Settings, LabelsAndSpecialClasses) {
  ASSERT_EQ(kws::kNumClasses, 12);
  EXPECT_STREQ(kws::kLabels[0], "yes");
  EXPECT_STREQ(kws::kLabels[kws::kSilenceIndex], "_silence_");
  EXPECT_STREQ(kws::kLabels[kws::kUnknownIndex], "_unknown_");
  const kws::AppConfig c = kws::SettingsAppConfig();
  EXPECT_EQ(c.recognizer.num_classes, kws::kNumClasses);
  EXPECT_EQ(c.labels, kws::kLabels);
  // The windowed model by default; the sketch switches to the step model.
  EXPECT_EQ(c.model_input, kws::ModelInput::kWindow);
  EXPECT_EQ(c.step_delay_frames, kws::kStepDelayFrames);
  EXPECT_FALSE(kws::kHasStepModel);  // the host-test header has no model at all
}

TEST(Settings, QuantisationConstantsAgree) {
  EXPECT_EQ(kws::kInputInvScale, 1.0f / kws::kInputScale);
  EXPECT_GE(kws::kInputZeroPoint, -128);
  EXPECT_LE(kws::kInputZeroPoint, 127);
}

TEST(Settings, DctIsOrthonormal) {
  for (int a = 0; a < kws::kNumMfcc; ++a) {
    for (int b = 0; b < kws::kNumMfcc; ++b) {
      double dot = 0.0;
      for (int m = 0; m < kws::kNumMel; ++m) {
        dot += static_cast<double>(kws::kDct[m * kws::kNumMfcc + a]) * kws::kDct[m * kws::kNumMfcc + b];
      }
      ASSERT_NEAR(dot, a == b ? 1.0 : 0.0, 1e-6) << a << "," << b;
    }
  }
}

TEST(Settings, MelBandsAreInsideTheSpectrum) {
  for (int m = 0; m < kws::kNumMel; ++m) {
    EXPECT_GT(kws::kMelLength[m], 0) << m;
    EXPECT_LE(kws::kMelStart[m] + kws::kMelLength[m], kws::kNumFftBins) << m;
    for (int i = 0; i < kws::kMelLength[m]; ++i) EXPECT_GT(kws::kMelWeights[kws::kMelOffset[m] + i], 0.0f);
  }
}

}  // namespace
